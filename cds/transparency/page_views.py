"""The rule index and the rule pages as server-rendered HTML: headings in order, tables with
header cells, every text from YAML escaped (``cds.transparency.markup``), readable printed."""

from __future__ import annotations

from cds.transparency.markup import Markup, document, element, join
from cds.transparency.plain_language import RuleLogic, Statement
from cds.transparency.rule_pages import (
    CodeLine,
    ParamView,
    RuleIndex,
    RulePage,
    ServiceSummary,
    ValueSetView,
)

STYLESHEET = "rule-pages.css"
NO_PATIENT_DATA = (
    "These pages describe the rules themselves; they show no patient data. The same addresses "
    "answer JSON when asked with Accept: application/json."
)
MODE_WORDS = {
    "on": "on: its cards are shown",
    "shadow": "shadow: evaluated and audited as would-fire, no card shown",
    "off": "off: not evaluated",
}


def _chrome(rules_url: str, heading: Markup, content: list[Markup]) -> list[Markup]:
    nav = element("nav", {"aria-label": "Rules"}, element("a", {"href": rules_url}, "All rules"))
    footer = element("footer", None, element("p", None, NO_PATIENT_DATA))
    return [element("header", None, nav), element("main", None, heading, *content), footer]


def _list(items: list[Markup] | list[str], cls: str | None = None) -> Markup:
    return element("ul", {"class": cls}, *(element("li", None, item) for item in items))


def _service(service: ServiceSummary) -> Markup:
    rows = [
        element(
            "tr",
            None,
            element("th", {"scope": "row"}, element("a", {"href": r.url}, r.id)),
            element("td", None, r.name),
            element("td", None, r.status),
            element("td", None, r.version),
        )
        for r in service.rules
    ]
    head = element(
        "tr",
        None,
        *(element("th", {"scope": "col"}, name) for name in ("Rule", "Name", "Status", "Version")),
    )
    return element(
        "section",
        {"aria-labelledby": f"service-{service.id}"},
        element("h2", {"id": f"service-{service.id}"}, service.title),
        element(
            "p",
            None,
            "Service ",
            element("code", None, service.id),
            f", hook {', '.join(service.hooks)}. {service.description}",
        ),
        element(
            "table",
            {"class": "rules"},
            element("caption", None, f"Rules of {service.id}"),
            element("thead", None, head),
            element("tbody", None, *rows),
        ),
    )


def index_html(index: RuleIndex, rules_url: str) -> str:
    """``GET /rules``: every service and its rules."""
    heading = element("h1", None, "Rules of footpath-cds")
    intro = element(
        "p",
        None,
        "Each rule below has a page: what it is for, on what evidence, who owns it, when it was "
        "reviewed, and its logic in plain language, generated from the rule itself.",
    )
    body = _chrome(rules_url, heading, [intro, *(_service(s) for s in index.services)])
    return document("Rules of footpath-cds", f"{rules_url}/{STYLESHEET}", body)


def _rule_link(key: str, rules_url: str) -> Markup:
    rule_id = key.partition("/")[0]
    return element("a", {"href": f"{rules_url}/{rule_id}"}, key)


def _statement(statement: Statement, rules_url: str) -> Markup:
    refs: list[str | Markup] = []
    if statement.valuesets:
        links = [element("a", {"href": f"#vs-{vs}"}, vs) for vs in statement.valuesets]
        refs += [" (value sets: ", join(_commas(links)), ")"]
    if statement.rules:
        links = [_rule_link(key, rules_url) for key in statement.rules]
        refs += [" (see ", join(_commas(links)), ")"]
    children = (
        [_list([_statement(c, rules_url) for c in statement.children])]
        if statement.children
        else []
    )
    return join([statement.text, *refs, *children])


def _commas(items: list[Markup]) -> list[str | Markup]:
    out: list[str | Markup] = []
    for i, item in enumerate(items):
        out += [", "] if i else []
        out.append(item)
    return out


def _logic(logic: RuleLogic, rules_url: str) -> list[Markup]:
    parts = []
    if logic.gates:
        parts.append(element("p", None, "Who and what it counts:"))
        parts.append(_list(list(logic.gates)))
    parts.append(element("p", None, f"It fires (card indicator '{logic.indicator}') when:"))
    parts.append(_list([_statement(logic.fires_when, rules_url)], "logic"))
    for step in logic.steps:
        parts.append(element("p", None, step.text))
        parts.append(_list([_statement(step.when, rules_url)], "logic"))
    return parts


def _code_row(line: CodeLine) -> Markup:
    what = "this code and every code below it" if line.match == "prefix" else "this code"
    origin = f"local (site): {line.note}" if line.local else "shipped, verified"
    return element(
        "tr",
        {"class": "local" if line.local else None},
        element("td", None, line.system),
        element("th", {"scope": "row"}, element("code", None, line.code)),
        element("td", None, line.display),
        element("td", None, what),
        element("td", None, origin),
    )


def _value_set(vs: ValueSetView) -> Markup:
    head = element(
        "tr",
        None,
        *(
            element("th", {"scope": "col"}, name)
            for name in ("System", "Code", "Display", "Matches", "Origin")
        ),
    )
    parts: list[Markup] = [
        element("h3", {"id": f"vs-{vs.id}"}, f"{vs.title} ({vs.id})"),
        element("p", None, element("a", {"href": vs.fhir}, "This value set as a FHIR ValueSet")),
    ]
    if vs.codes:
        parts.append(
            element(
                "table",
                None,
                element("caption", None, f"Codes of value set {vs.id}"),
                element("thead", None, head),
                element("tbody", None, *(_code_row(c) for c in vs.codes)),
            )
        )
    else:
        parts.append(element("p", None, "No codes: it matches by text only."))
    if vs.text_match:
        parts.append(
            element(
                "p",
                None,
                f"Also matches free text of {', '.join(vs.text_match_on)} naming any of: "
                f"{', '.join(vs.text_match)}.",
            )
        )
    if vs.carved_out:
        carved = [f"{c.code} ({c.system}): {c.display}" for c in vs.carved_out]
        parts.append(element("p", None, "Not members, although below a prefix:"))
        parts.append(_list(carved))
    return element("section", {"class": "value-set"}, *parts)


def _section(slug: str, title: str, *content: Markup) -> Markup:
    return element(
        "section",
        {"aria-labelledby": slug},
        element("h2", {"id": slug}, title),
        *content,
    )


def _facts(page: RulePage) -> Markup:
    review = page.next_review.isoformat()
    rows: list[tuple[str, str | Markup]] = [
        ("Status", f"{page.status}, version {page.version}"),
        ("Runs today", MODE_WORDS[page.mode]),
        ("Owner", page.owner),
        ("Last reviewed", page.last_reviewed.isoformat()),
        (
            "Next review",
            join([review, " ", element("strong", None, "(overdue: it still runs)")])
            if page.review_overdue
            else review,
        ),
        (
            "Services and hooks",
            "; ".join(f"{s.title} ({s.id}, {', '.join(s.hooks)})" for s in page.services),
        ),
    ]
    if page.effective_from or page.effective_to:
        start = page.effective_from.isoformat() if page.effective_from else "open"
        end = page.effective_to.isoformat() if page.effective_to else "open"
        rows.append(("In effect", f"{start} to {end}"))
    return element(
        "dl",
        {"class": "facts"},
        *(join([element("dt", None, k), element("dd", None, v)]) for k, v in rows),
    )


def _param_row(param: ParamView) -> Markup:
    value = f"{param.value} (set by the site)" if param.tuned else param.value
    return element(
        "tr",
        {"class": "local" if param.tuned else None},
        element("th", {"scope": "row"}, element("code", None, param.name)),
        element("td", None, value),
        element("td", None, param.default),
        element("td", None, param.bounds),
        element("td", None, param.description),
    )


def _site(page: RulePage) -> list[Markup]:
    parts: list[Markup] = []
    if page.site_changes:
        parts.append(element("p", None, "This site's settings (CDS_SITE_CONFIG) change it:"))
        parts.append(_list(list(page.site_changes)))
    else:
        parts.append(element("p", None, "This site's settings change nothing of this rule."))
    if any(c.local for vs in page.value_sets for c in vs.codes):
        parts.append(
            element(
                "p", None, "Codes marked local (site) in its value sets were added by the site."
            )
        )
    if page.params:
        head = element(
            "tr",
            None,
            *(
                element("th", {"scope": "col"}, name)
                for name in ("Parameter", "Runs with", "Default", "Bounds", "What it sets")
            ),
        )
        parts.append(
            element(
                "table",
                None,
                element("caption", None, "Parameters a site may tune"),
                element("thead", None, head),
                element("tbody", None, *(_param_row(p) for p in page.params)),
            )
        )
    return parts


def _variants(page: RulePage, rules_url: str) -> list[Markup]:
    parts: list[Markup] = []
    for variant in page.variants:
        if len(page.variants) > 1:
            parts.append(element("h3", None, f"{variant.logic.name} ({variant.logic.key})"))
        parts.extend(_logic(variant.logic, rules_url))
        card = variant.card
        parts.append(element("p", None, f"Its card says: {card.summary}"))
        if card.suggestions:
            parts.append(element("p", None, "and suggests:"))
            parts.append(_list(list(card.suggestions)))
    return parts


def rule_html(page: RulePage, rules_url: str) -> str:
    """``GET /rules/{id}``: one rule, its variants sharing the page."""
    evidence = [
        join([element("a", {"href": c.url}, c.label), f" ({c.year})"]) for c in page.evidence
    ]
    attributes = element(
        "table",
        None,
        element("caption", None, "HTI-1 source attributes, 45 CFR 170.315(b)(11)(iv)(A)"),
        element(
            "thead",
            None,
            element(
                "tr",
                None,
                element("th", {"scope": "col"}, "Attribute"),
                element("th", {"scope": "col"}, "This rule"),
            ),
        ),
        element(
            "tbody",
            None,
            *(
                element(
                    "tr",
                    None,
                    element("th", {"scope": "row"}, f"{a.name} ({a.item})"),
                    element("td", None, a.value),
                )
                for a in page.source_attributes
            ),
        ),
    )
    sets = [element("a", {"href": f"#vs-{vs.id}"}, vs.id) for vs in page.value_sets]
    content = [
        _facts(page),
        _section("intended-use", "Intended use", element("p", None, page.intended_use)),
        _section("cautions", "Cautions and limitations", _list(list(page.cautions))),
        _section("evidence", "Evidence", _list(evidence, "evidence")),
        _section("logic", "Logic", *_variants(page, rules_url)),
        _section(
            "reads",
            "Data it reads",
            element("p", None, "FHIR resources: " + ", ".join(page.reads) + "."),
            element("p", None, "Value sets: ", join(_commas(sets)), "."),
        ),
        _section("site-settings", "Site settings", *_site(page)),
        _section("value-sets", "Value sets", *(_value_set(vs) for vs in page.value_sets)),
        _section("source-attributes", "Source attributes", attributes),
        _section("how-to-read", "How to read the logic", _list(list(page.how_to_read))),
    ]
    heading = element("h1", None, f"{page.id}: {page.name}")
    title = f"{page.id}: {page.name}"
    return document(title, f"{rules_url}/{STYLESHEET}", _chrome(rules_url, heading, content))


def not_found_html(rule_id: str, rules_url: str) -> str:
    """A 404 page naming what was asked for (escaped) and where the rules are."""
    heading = element("h1", None, "No such rule")
    text = element("p", None, f"The catalogue has no rule '{rule_id}'.")
    return document(
        "No such rule", f"{rules_url}/{STYLESHEET}", _chrome(rules_url, heading, [text])
    )
