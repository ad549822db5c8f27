"""Card links: only the publisher's own https page or the article's DOI ever reaches a clinician."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cds.cards.links import LINK_HOSTS_FILE, link_problem
from cds.catalogue import check, load_catalogue
from cds.cli import main
from cds.settings import PROJECT_ROOT
from tests.problem_lines import unplaced, unplaced_text

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
CARDS = PROJECT_ROOT / "cards"

# The clinical brief's table "Links shown to clinicians" (section 2), copied as a project
# fixture: for every reference, the publisher's own page or the article's DOI.
LINKS_FOR_CARDS = frozenset(
    {
        "https://www.nice.org.uk/guidance/ng59",
        "https://www.nice.org.uk/guidance/ng59/chapter/Recommendations",
        "https://acsearch.acr.org/list/GetAppendix?PanelName=Neurologic&TopicId=141",
        "https://doi.org/10.7326/0003-4819-147-7-200710020-00006",
        "https://doi.org/10.7326/0003-4819-154-3-201102010-00008",
        "https://www.choosingwisely.org/societies/american-association-of-neuromuscular-electrodiagnostic-medicine/",
        "https://www.aanem.org/clinical-practice-resources/guidelines/guideline/utility-of-edx-testing-in-evaluating-patients-with-lumbosacral-radiculopathy",
        "https://doi.org/10.1002/mus.21759",
        "https://www.aanem.org/detail-pages/position-statement/model-policy-for-nerve-conduction-studies-and-needle-electromyography",
        "https://doi.org/10.1212/01.wnl.0000336370.51010.a1",
        "https://doi.org/10.2337/dc25-S012",
        "https://doi.org/10.2337/dc25-S009",
        "https://doi.org/10.2337/dc25-S002",
        "https://bestpractice.bmj.com/topics/en-gb/3000164",
        "https://cks.nice.org.uk/topics/sciatica-lumbar-radiculopathy/",
        "https://www.nice.org.uk/guidance/cg168",
        "https://imj.ie/1993-2",
        "https://www.statpearls.com/point-of-care/27291",
        "https://doi.org/10.3344/kjp.2020.33.4.305",
        "https://link.springer.com/chapter/10.1007/978-3-030-74625-4_2",
        "https://www.aafp.org/pubs/afp/collections/choosing-wisely.html",
        "https://pubmed.ncbi.nlm.nih.gov/16414555/",
    }
)


def _allowed_hosts() -> frozenset[str]:
    doc = yaml.safe_load((CARDS / LINK_HOSTS_FILE).read_text())
    return frozenset(h["host"] for h in doc["hosts"])


def _shipped_links() -> list[tuple[str, str]]:
    catalogue = load_catalogue(PROJECT_ROOT / "rules", CARDS, TOPIC)
    return [
        (card.id, url)
        for card in catalogue.cards.values()
        for url in [card.source.url, *(link.url for link in card.links)]
    ]


def test_the_rules_check_passes_every_shipped_card_link() -> None:
    assert check(PROJECT_ROOT / "rules", CARDS, TOPIC) == []
    links = _shipped_links()
    assert len(links) > 30
    assert [(card, url) for card, url in links if link_problem(url, _allowed_hosts())] == []


def test_every_shipped_card_link_comes_from_the_links_shown_to_clinicians_table() -> None:
    assert [(card, url) for card, url in _shipped_links() if url not in LINKS_FOR_CARDS] == []


def test_the_cauda_equina_card_cites_bmj_best_practice_itself_not_a_library_proxy() -> None:
    catalogue = load_catalogue(PROJECT_ROOT / "rules", CARDS, TOPIC)
    card = catalogue.cards["rf-01"]
    assert card.source.url == "https://bestpractice.bmj.com/topics/en-gb/3000164"
    assert card.links[0].url == card.source.url


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(CARDS, tmp_path / "cards")
    return tmp_path


def _replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def test_a_plain_http_card_link_is_refused_with_file_and_path(tree: Path) -> None:
    _replace(tree / "cards" / "rf-01.yaml", "https://cks.nice.org.uk", "http://cks.nice.org.uk")
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "cards/rf-01.yaml: links[1].url: "
        "'http://cks.nice.org.uk/topics/sciatica-lumbar-radiculopathy/' is not https"
    ]


def test_a_card_source_on_a_host_off_the_allow_list_is_refused(tree: Path) -> None:
    proxy = "https://bestpractice-bmj-com.bibliotheek.ehb.be/topics/en-gb/3000164"
    _replace(
        tree / "cards" / "rf-01.yaml", "https://bestpractice.bmj.com/topics/en-gb/3000164", proxy
    )
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "cards/rf-01.yaml: source.url: host 'bestpractice-bmj-com.bibliotheek.ehb.be' is not on "
        "the publisher allow-list (link-hosts.yaml)"
    ]


def test_a_link_with_credentials_or_a_port_on_an_allowed_host_is_refused() -> None:
    allowed = frozenset({"www.nice.org.uk"})
    assert link_problem("https://www.nice.org.uk/guidance/ng59", allowed) is None
    assert link_problem("https://someone@www.nice.org.uk/guidance/ng59", allowed) is not None
    assert link_problem("https://www.nice.org.uk:8443/guidance/ng59", allowed) is not None
    assert link_problem("https://nice.org.uk/guidance/ng59", allowed) is not None


def test_a_host_leaves_the_allow_list_and_its_cards_are_refused(tree: Path) -> None:
    _replace(tree / "cards" / LINK_HOSTS_FILE, "host: www.statpearls.com", "host: statpearls.org")
    problems = unplaced(check(tree / "rules", tree / "cards", TOPIC))
    assert problems
    assert all("host 'www.statpearls.com' is not on the publisher" in p for p in problems)
    assert {p.split(":")[0] for p in problems} == {"cards/mim-02.yaml", "cards/rb-04.yaml"}


def test_a_missing_allow_list_is_a_problem_not_an_open_door(tree: Path) -> None:
    (tree / "cards" / LINK_HOSTS_FILE).unlink()
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "cards/link-hosts.yaml: the publisher allow-list of card links is missing"
    ]


def test_cds_rules_check_exits_non_zero_on_an_unlisted_host(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _replace(
        tree / "cards" / "os-04.yaml",
        "https://www.nice.org.uk/guidance/ng59/chapter/Recommendations",
        "https://www.mims.co.uk/nice-updates-sciatica-treatment-guidance/pain/article/1695191",
    )
    monkeypatch.setenv("CDS_RULES_DIR", str(tree / "rules"))
    monkeypatch.setenv("CDS_CARDS_DIR", str(tree / "cards"))
    assert main(["rules", "check"]) == 1
    err = unplaced_text(capsys.readouterr().err)
    assert "cards/os-04.yaml: links[0].url: host 'www.mims.co.uk' is not on the publisher" in err
