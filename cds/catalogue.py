"""Load and cross-check rules/, rules/valuesets/ and cards/ into one validated Catalogue."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cds import hooks
from cds.cards import CardTemplate
from cds.cards.links import (
    LINK_HOSTS_FILE,
    LinkHosts,
    card_link_problems,
    load_link_hosts,
)
from cds.cards.render import coding, service_request
from cds.cards.schema import CodeRef, ServiceRequestSpec
from cds.cards.wording import card_wording_problems
from cds.data.templates import check_template
from cds.errors import ConfigError
from cds.fhir import parse_resource
from cds.governance import Governance, load_governance
from cds.rules.clauses import CLAUSES, RefKind
from cds.rules.code_filters import filter_problems, sets_read
from cds.rules.params import ParamValue, substitute_service
from cds.rules.policy import POLICY_FILE, ClinicalPolicy, read_policy
from cds.rules.schema import Node, Precedence, RuleSpec, ServiceFile, walk
from cds.site_settings import NO_SITE, SiteSettings, read_site_file, settle, site_problems
from cds.snooze.reasons import reason_problems
from cds.valuesets import ValueSets, read_valuesets
from cds.yaml_files import load_document, locate


@dataclass(frozen=True)
class ServiceDefinition:
    """One CDS service: its discovery entry, prefetch and the rules it runs."""

    id: str
    hooks: tuple[str, ...]
    title: str
    description: str
    usage_requirements: str | None
    prefetch: Mapping[str, str]
    required_prefetch: frozenset[str]
    rules: tuple[RuleSpec, ...]
    precedence: Precedence
    policy: ClinicalPolicy
    limb_symptoms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Catalogue:
    """Every service, rule, card template and value set, validated together at startup."""

    services: Mapping[str, ServiceDefinition]
    rules: Mapping[str, RuleSpec]  # by rule key ("RB-01", "OS-02/no-emg")
    cards: Mapping[str, CardTemplate]
    valuesets: ValueSets
    topic_system: str
    sources: Mapping[str, str] = field(default_factory=dict)  # rule key -> defining file
    governance: Governance = field(default_factory=lambda: Governance({}, {}))
    # The site's settings (CDS_SITE_CONFIG), already applied to the rules, value sets and
    # governance above; kept for its digest and its description of what it changed.
    site: SiteSettings = NO_SITE

    def rule_ids(self) -> list[str]:
        """Every rule id (variants share their rule's id), for metrics labels."""
        return sorted({rule.id for rule in self.rules.values()})

    def descriptors(self) -> list[hooks.ServiceDescriptor]:
        """One discovery entry per service, in file order (the catalogue refuses a repeated id)."""
        return [
            hooks.ServiceDescriptor(
                hook=hook,
                title=s.title,
                description=s.description,
                id=s.id,
                prefetch=dict(s.prefetch) or None,
                usage_requirements=s.usage_requirements,
            )
            for s in self.services.values()
            for hook in s.hooks
        ]


def _node_problems(
    node: Node, path: str, valuesets: ValueSets, rule_keys: set[str], label: str
) -> list[str]:
    known: dict[RefKind, Container[str]] = {"value set": valuesets, "rule": rule_keys}
    problems: list[str] = []
    for n, where in walk(node, path):
        name, value = n.branch
        clause_type = CLAUSES.get(name)
        if clause_type is None:
            continue  # all / any / not: their children are walked
        problems.extend(
            f"{label}: {where}.{name}{at}: unknown {kind} '{ref}'"
            for at, kind, ref in clause_type.refs(value)
            if ref not in known[kind]
        )
    return problems


def _code_problems(ref: CodeRef, valuesets: ValueSets, where: str) -> list[str]:
    if ref.valueset not in valuesets:
        return [f"{where}.valueset: unknown value set '{ref.valueset}'"]
    try:
        coding(valuesets, ref)
    except StopIteration:
        return [f"{where}.code: '{ref.code}' is not a shipped code of value set '{ref.valueset}'"]
    return []


def _fhir_problems(spec: ServiceRequestSpec, valuesets: ValueSets, where: str) -> list[str]:
    # Render once with a placeholder patient so an invalid R4 ServiceRequest fails at startup.
    refs = [*spec.codes, *([spec.performer_type] if spec.performer_type else [])]
    if any(_code_problems(ref, valuesets, where) for ref in refs):
        return []
    resource = service_request(
        spec, valuesets=valuesets, patient_id="example", reasons=[], priority="routine"
    )
    if parse_resource(resource) is None:
        return [f"{where}: does not render a valid FHIR R4 ServiceRequest"]
    return []


def _load_cards(
    cards_dir: Path, problems: list[str]
) -> tuple[dict[str, CardTemplate], LinkHosts | None]:
    cards: dict[str, CardTemplate] = {}
    if not cards_dir.is_dir():
        problems.append(f"{cards_dir}: card directory not found")
        return cards, None
    link_hosts = load_link_hosts(cards_dir, problems)
    for path in sorted(cards_dir.glob("*.yaml")):
        if path.name == LINK_HOSTS_FILE:
            continue
        card = load_document(path, f"{cards_dir.name}/{path.name}", CardTemplate, problems)
        if card is not None:
            cards[card.id] = card
    return cards, link_hosts


def _card_problems(
    card: CardTemplate, label: str, valuesets: ValueSets, link_hosts: LinkHosts | None
) -> list[str]:
    problems = []
    if link_hosts is not None:
        problems.extend(card_link_problems(card, label, link_hosts.names))
    problems.extend(card_wording_problems(card, label))
    for i, s in enumerate(card.suggestions):
        for j, action in enumerate(s.actions):
            spec = action.service_request
            if spec is None:
                continue
            where = f"{label}: suggestions[{i}].actions[{j}].serviceRequest"
            for k, ref in enumerate(spec.codes):
                problems.extend(_code_problems(ref, valuesets, f"{where}.codes[{k}]"))
            if spec.performer_type is not None:
                problems.extend(
                    _code_problems(spec.performer_type, valuesets, f"{where}.performerType")
                )
            problems.extend(_fhir_problems(spec, valuesets, where))
    return problems


SiteValues = Mapping[str, Mapping[str, ParamValue]]  # tuned parameters, by rule id


def _load_services(
    rules_dir: Path, problems: list[str], site_values: SiteValues
) -> tuple[list[tuple[str, ServiceFile]], dict[str, RuleSpec], dict[str, str]]:
    files: list[tuple[str, ServiceFile]] = []
    rules: dict[str, RuleSpec] = {}
    origin: dict[str, str] = {}
    for path in sorted(rules_dir.glob("*.yaml")):
        label = f"{rules_dir.name}/{path.name}"
        service = load_document(
            path, label, ServiceFile, problems, lambda raw: substitute_service(raw, site_values)
        )
        if service is None:
            continue
        for i, rule in enumerate(service.rules):
            if rule.key in rules:
                problems.append(
                    f"{label}: rules[{i}].id: '{rule.key}' is already defined in {origin[rule.key]}"
                )
                continue
            rules[rule.key] = rule
            origin[rule.key] = label
        files.append((label, service))
    return files, rules, origin


def _rule_problems(
    label: str,
    where: str,
    rule: RuleSpec,
    service: ServiceFile,
    known: tuple[set[str], Mapping[str, CardTemplate], ValueSets],
) -> list[str]:
    keys, cards, valuesets = known
    problems: list[str] = []
    card = cards.get(rule.card)
    if card is None:
        problems.append(f"{label}: {where}.card: unknown card '{rule.card}'")
    elif rule.red_flag and card.unknown_age_note is None:
        problems.append(
            f"{label}: {where}.redFlag: card '{card.id}' needs an unknownAgeNote "
            "(a red flag shown with the age unknown says so)"
        )
    for path, tree in rule.trees(where):
        problems.extend(_node_problems(tree, path, valuesets, keys, label))
    suggestions = {s.key for s in card.suggestions} if card is not None else None
    for j, drop in enumerate(rule.drop_suggestions):
        if suggestions is not None and drop.suggestion not in suggestions:
            problems.append(
                f"{label}: {where}.dropSuggestions[{j}].suggestion: card '{rule.card}' has no "
                f"suggestion '{drop.suggestion}'"
            )
    problems.extend(
        f"{label}: {where}.hooks: '{hook}' is not a hook of this service"
        for hook in rule.hooks or ()
        if hook not in service.hooks
    )
    return problems


def _precedence_problems(label: str, precedence: Precedence, keys: set[str]) -> list[str]:
    ids = {k.split("/")[0] for k in keys}
    named = [
        (f"precedence.suppress[{i}].{part}[{j}]", name)
        for i, sup in enumerate(precedence.suppress)
        for part, names in (("if", sup.if_), ("then", sup.then))
        for j, name in enumerate(names)
    ] + [
        (f"precedence.onePerKind[{i}].priority[{j}]", name)
        for i, owner in enumerate(precedence.one_per_kind)
        for j, name in enumerate(owner.priority)
    ]
    return [
        f"{label}: {where}: unknown rule '{name}'"
        for where, name in named
        if name not in ids and name not in keys
    ]


def _prefetch_problems(label: str, service: ServiceFile, policy: ClinicalPolicy) -> list[str]:
    problems = [
        f"{label}: prefetch.{key}: {p} (hook {hook})"
        for key, template in service.prefetch.items()
        for hook in service.hooks
        for p in check_template(template, hook)
    ]
    problems.extend(
        f"{label}: requiredPrefetch[{i}]: '{key}' is not a prefetch key"
        for i, key in enumerate(service.required_prefetch)
        if key not in service.prefetch
    )
    problems.extend(
        f"{label}: requiredPrefetch: '{key}' must be required ({POLICY_FILE})"
        for key in policy.required_prefetch
        if key not in service.required_prefetch
    )
    return problems


def _service_problems(
    label: str,
    service: ServiceFile,
    *,
    catalogue_rules: Mapping[str, RuleSpec],
    cards: Mapping[str, CardTemplate],
    valuesets: ValueSets,
    policy: ClinicalPolicy,
) -> list[str]:
    keys = set(catalogue_rules)
    problems = _prefetch_problems(label, service, policy)
    problems.extend(
        f"{label}: limbSymptoms[{i}]: unknown value set '{vs_id}'"
        for i, vs_id in enumerate(service.limb_symptoms)
        if vs_id not in valuesets
    )
    problems.extend(
        f"{label}: sharedRules[{i}]: unknown rule '{key}'"
        for i, key in enumerate(service.shared_rules)
        if key not in keys
    )
    for i, rule in enumerate(service.rules):
        problems.extend(
            _rule_problems(label, f"rules[{i}]", rule, service, (keys, cards, valuesets))
        )
    problems.extend(_precedence_problems(label, service.precedence, keys))
    return problems


def _one_hook_problems(label: str, service: ServiceFile) -> list[str]:
    """D-04: ``{baseUrl}/cds-services/{id}`` names one service for one hook, and clients key
    services by that URL (the reference sandbox keeps only the last entry with an id), so
    discovery must never list an id twice. Ids are unique already: each is its file's name."""
    if len(service.hooks) <= 1:
        return []
    return [
        f"{label}: hooks: a service answers one hook, but '{service.id}' lists "
        f"{', '.join(service.hooks)} and discovery would list its id {len(service.hooks)} "
        "times; give each hook its own service file and share the rules with sharedRules"
    ]


def _cycles(files: list[tuple[str, ServiceFile]], rules: Mapping[str, RuleSpec]) -> list[str]:
    def refs(node: Node) -> set[str]:
        return {value for n, _ in walk(node, "") for name, value in [n.branch] if name == "rule"}

    problems = []
    for label, service in files:
        for i, rule in enumerate(service.rules):
            key = rule.key
            stack, seen = [key], set()
            while stack:
                current = stack.pop()
                for ref in refs(rules[current].when) if current in rules else set():
                    if ref == key:
                        problems.append(
                            f"{label}: rules[{i}].when: rule '{key}' refers back to itself "
                            "through 'rule:' clauses"
                        )
                        stack = []
                        break
                    if ref not in seen:
                        seen.add(ref)
                        stack.append(ref)
    return problems


def _code_filter_problems(
    files: list[tuple[str, ServiceFile]],
    services: Mapping[str, ServiceDefinition],
    rules: Mapping[str, RuleSpec],
    valuesets: ValueSets,
) -> list[str]:
    """Each service's prefetch code filters against the value sets its rules read."""
    return [
        problem
        for label, file in files
        for problem in filter_problems(
            label,
            services[file.id].prefetch,
            sets_read(services[file.id].rules, rules),
            valuesets,
        )
    ]


def _unloaded(
    rules_dir: Path,
    cards_dir: Path,
    valuesets: ValueSets,
    cards: Mapping[str, CardTemplate],
    services: list[str],
) -> list[str]:
    """The files that did not load (each file's id is its name)."""
    return [
        f"{directory.name}/{path.relative_to(directory)}"
        for directory, pattern, loaded in (
            (rules_dir, "valuesets/*.yaml", valuesets),
            (cards_dir, "*.yaml", {*cards, LINK_HOSTS_FILE.removesuffix(".yaml")}),
            (rules_dir, "*.yaml", services),
        )
        for path in sorted(directory.glob(pattern))
        if path.stem not in loaded
    ]


def _build(
    rules_dir: Path, cards_dir: Path, topic_system: str, site_values: SiteValues
) -> tuple[Catalogue | None, list[str]]:
    problems: list[str] = []
    if not rules_dir.is_dir():
        return None, [f"{rules_dir}: rules directory not found"]
    valuesets, vs_problems = read_valuesets(rules_dir / "valuesets", rules_dir.parent)
    problems.extend(vs_problems)
    cards, link_hosts = _load_cards(cards_dir, problems)
    files, rules, origin = _load_services(rules_dir, problems, site_values)
    unloaded = _unloaded(rules_dir, cards_dir, valuesets, cards, [s.id for _, s in files])
    if unloaded:
        # Whatever a file that did not load defines, the others would report as unknown.
        problems.append(
            f"references between files are not checked until {', '.join(unloaded)} "
            f"{'loads' if len(unloaded) == 1 else 'load'}"
        )
        return None, locate(problems, (rules_dir, cards_dir))
    for card in cards.values():
        problems.extend(
            _card_problems(card, f"{cards_dir.name}/{card.id}.yaml", valuesets, link_hosts)
        )
    policy = read_policy(rules_dir, problems) if files else None
    if files and policy is None:
        return None, locate(problems, (rules_dir, cards_dir))
    services: dict[str, ServiceDefinition] = {}
    for label, service in files:
        assert policy is not None  # noqa: S101 - loaded above whenever there is a service
        problems.extend(
            _service_problems(
                label,
                service,
                catalogue_rules=rules,
                cards=cards,
                valuesets=valuesets,
                policy=policy,
            )
        )
        problems.extend(_one_hook_problems(label, service))
        own = list(service.rules) + [rules[k] for k in service.shared_rules if k in rules]
        services[service.id] = ServiceDefinition(
            id=service.id,
            hooks=tuple(service.hooks),
            title=service.title,
            description=service.description,
            usage_requirements=service.usage_requirements,
            prefetch=dict(service.prefetch),
            required_prefetch=frozenset(service.required_prefetch),
            rules=tuple(own),
            precedence=service.precedence,
            policy=policy,
            limb_symptoms=frozenset(service.limb_symptoms),
        )
    problems.extend(_cycles(files, rules))
    problems.extend(reason_problems(rules, cards, cards_dir.name))
    if problems:
        return None, locate(problems, (rules_dir, cards_dir))
    # Only over a sound catalogue: a missing rule would make every code it reads look unread.
    problems.extend(_code_filter_problems(files, services, rules, valuesets))
    governance, governance_problems = load_governance(rules_dir, rules, link_hosts)
    problems.extend(governance_problems)
    if problems:
        return None, locate(problems, (rules_dir, cards_dir))
    catalogue = Catalogue(services, rules, cards, valuesets, topic_system, origin, governance)
    return catalogue, []


def _with_site(
    shipped: Catalogue, path: Path, directories: tuple[Path, Path, str]
) -> tuple[Catalogue | None, list[str]]:
    """``shipped`` with the site's settings applied; None and every problem when they are wrong.

    Tuned parameters are put in place of the rules' ``$name`` references by loading the rule
    files again with them: the rules are then validated, and cross-checked, as tuned."""
    problems: list[str] = []
    read = read_site_file(path, problems)
    if read is None or read.document is None:
        return None, problems
    document = read.document
    problems = site_problems(read, document, shipped.rules, shipped.governance, shipped.valuesets)
    if problems:
        return None, problems
    tuned: Catalogue | None = shipped
    values = {rid: dict(s.params) for rid, s in document.rules.items() if s.params}
    if values:
        tuned, problems = _build(*directories, values)
        if tuned is None:
            return None, [f"{read.label}: with its params the rules are not valid:", *problems]
    assert tuned is not None  # noqa: S101 - built above
    site, governance, valuesets = settle(
        read, document, tuned.rules, tuned.governance, tuned.valuesets
    )
    return replace(tuned, site=site, governance=governance, valuesets=valuesets), []


def _effective(
    rules_dir: Path, cards_dir: Path, topic_system: str, site: Path | None
) -> tuple[Catalogue | None, list[str]]:
    catalogue, problems = _build(rules_dir, cards_dir, topic_system, {})
    if catalogue is None or site is None:
        return catalogue, problems
    return _with_site(catalogue, site, (rules_dir, cards_dir, topic_system))


def check(
    rules_dir: Path, cards_dir: Path, topic_system: str, site: Path | None = None
) -> list[str]:
    """Every problem with the rules, cards, value sets and the site's settings (``cds rules
    check``); empty when fine."""
    return _effective(rules_dir, cards_dir, topic_system, site)[1]


def load_catalogue(
    rules_dir: Path, cards_dir: Path, topic_system: str, site: Path | None = None
) -> Catalogue:
    """The validated catalogue, with the site's settings (``site``: CDS_SITE_CONFIG) applied;
    raises ``ConfigError`` listing every problem with file and path."""
    catalogue, problems = _effective(rules_dir, cards_dir, topic_system, site)
    if catalogue is None:
        raise ConfigError(problems or [f"{rules_dir}: no catalogue"])
    return catalogue
