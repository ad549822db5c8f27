// The playground acts as a small EHR: it builds a hook call, sends it, renders cards, sends feedback.
"use strict";

(function () {
  const INDICATOR_ORDER = { critical: 0, warning: 1, info: 2 };
  const state = { patients: [], hookServices: [], fhirServer: null, serviceId: null, request: null };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- markdown (card.detail)

  // markdown-it (vendored from npm, markdown-it.LICENSE.txt) renders CommonMark as GitHub does
  // for what cards use: soft line breaks reflow, paragraphs, lists, emphasis, links, backslash
  // escapes; GFM's tables, strikethrough and autolinks too. Raw HTML in card text stays text.
  const md = window.markdownit({ html: false, linkify: true, typographer: false });
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: false });
  // Only http(s) targets become links (or images); javascript:, data: and the rest stay text.
  md.validateLink = (url) => /^https?:\/\//i.test(url.trim());
  md.core.ruler.push("card_links_and_headings", (parsed) => {
    for (const token of parsed.tokens) {
      if (token.type === "heading_open" || token.type === "heading_close") {
        // Card headings sit below the card's own summary heading (h3).
        token.tag = `h${Math.min(6, Number(token.tag.slice(1)) + 3)}`;
      }
      for (const child of token.children || []) {
        if (child.type === "link_open") {
          child.attrSet("target", "_blank");
          child.attrSet("rel", "noopener noreferrer");
        }
      }
    }
  });

  // ---------------------------------------------------------------- HTTP

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(problem(response, body));
    return body;
  }

  async function postJson(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, body };
  }

  function problem(response, body) {
    const issue = body && Array.isArray(body.issue) ? body.issue[0] : null;
    const detail = issue && issue.diagnostics ? `: ${issue.diagnostics}` : "";
    return `HTTP ${response.status}${detail}`;
  }

  const pretty = (value) => JSON.stringify(value, null, 2);

  // ---------------------------------------------------------------- choosing

  function selectedPatient() {
    return state.patients.find((p) => p.id === $("patient").value) || null;
  }

  function dataSource() {
    const checked = document.querySelector('input[name="data"]:checked');
    return checked ? checked.value : "prefetch";
  }

  // Every hook some service answers, in discovery order: the list is the services', not ours.
  function offerHooks(discovery) {
    const select = $("hook");
    for (const service of discovery.services || []) {
      if (state.hookServices.some((known) => known.hook === service.hook)) continue;
      state.hookServices.push(service);
      select.append(element("option", { value: service.hook }, service.hook));
    }
  }

  function syncControls(patientChanged) {
    const patient = selectedPatient();
    if (!patient) return;
    $("patient-description").textContent =
      `${patient.description} Expected: ${patient.expectedRules.join(", ") || "no card"}` +
      ` (${patient.hook}).`;
    const hook = $("hook");
    for (const option of hook.options) option.disabled = !patient.hooks.includes(option.value);
    // A new patient starts on the hook its scenario is written for.
    if (patientChanged && patient.hooks.includes(patient.hook)) hook.value = patient.hook;
    if (!hook.selectedOptions.length || hook.selectedOptions[0].disabled) {
      const first = [...hook.options].find((option) => !option.disabled);
      if (first) hook.value = first.value;
    }
    const service = state.hookServices.find((known) => known.hook === hook.value);
    const unavailable = [...hook.options].filter((o) => o.disabled).map((o) => o.value);
    $("hook-hint").textContent =
      (service ? `${service.title} (service ${service.id}).` : "") +
      (unavailable.length ? ` Not for this patient (no draft order): ${unavailable.join(", ")}.` : "");
    const server = $("data-server");
    server.disabled = !state.fhirServer;
    if (server.disabled && server.checked) {
      document.querySelector('input[name="data"][value="prefetch"]').checked = true;
    }
    $("data-hint").textContent = state.fhirServer
      ? `Demo FHIR server: ${state.fhirServer}`
      : "No demo FHIR server here (run `cds demo` to fetch from one).";
  }

  async function loadRequest() {
    const patient = selectedPatient();
    if (!patient) return null;
    const query = new URLSearchParams({ hook: $("hook").value, data: dataSource() });
    const url = `/playground/patients/${encodeURIComponent(patient.id)}/request?${query}`;
    const built = await getJson(url);
    state.serviceId = built.serviceId;
    state.request = built.request;
    $("service-url").textContent = `/cds-services/${built.serviceId}`;
    $("request-json").textContent = pretty(built.request);
    return built;
  }

  function resetFeedback() {
    // Feedback belongs to the cards it answered: another patient or call starts a clean panel.
    const hint = element("p", { class: "hint" });
    hint.textContent = "Accept a suggestion or dismiss a card to send feedback.";
    $("feedback").replaceChildren(hint);
  }

  async function refresh(event) {
    syncControls(Boolean(event && event.target === $("patient")));
    resetFeedback();
    try {
      await loadRequest();
    } catch (error) {
      showStatus(`Could not build the request (${error.message}).`, true);
    }
  }

  // ---------------------------------------------------------------- cards

  function showStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("status--error", Boolean(isError));
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function safeLink(url, label) {
    if (!/^https?:\/\//i.test(url || "")) return element("span", {}, label);
    return element("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label);
  }

  function renderCard(card, index) {
    const indicator = INDICATOR_ORDER[card.indicator] !== undefined ? card.indicator : "info";
    const topic = card.source && card.source.topic ? card.source.topic.code : "";
    const headingId = `card-${index}-summary`;
    const article = element("article", {
      class: `card card--${indicator}`,
      "data-rule": topic,
      "data-indicator": indicator,
      "data-card": card.uuid || "",
      "aria-labelledby": headingId,
    });

    const header = element("header", { class: "card__header" });
    header.append(element("span", { class: "card__indicator" }, indicator));
    header.append(element("h3", { id: headingId, class: "card__summary" }, card.summary));
    article.append(header);

    if (card.detail) {
      const detail = element("div", { class: "card__detail" });
      detail.innerHTML = md.render(card.detail); // html: false, http(s) links only (see md)
      article.append(detail);
    }

    if (card.source) {
      const source = element("p", { class: "card__source" }, "Source: ");
      source.append(safeLink(card.source.url, card.source.label));
      if (topic) source.append(element("span", { class: "card__topic" }, ` · ${topic}`));
      article.append(source);
    }

    if (Array.isArray(card.links) && card.links.length) {
      const links = element("ul", { class: "card__links", "aria-label": "Links" });
      for (const link of card.links) {
        const item = element("li");
        item.append(safeLink(link.type === "absolute" ? link.url : "", link.label));
        links.append(item);
      }
      article.append(links);
    }

    const actions = element("div", { class: "card__actions" });
    if (Array.isArray(card.suggestions) && card.suggestions.length) {
      const group = element("div", { class: "card__suggestions", role: "group" });
      group.setAttribute("aria-label", "Suggestions");
      for (const suggestion of card.suggestions) {
        const button = element(
          "button",
          { type: "button", class: "suggestion", "data-suggestion": suggestion.uuid || "" },
          suggestion.label
        );
        if (suggestion.isRecommended) button.classList.add("suggestion--recommended");
        button.disabled = !card.uuid || !suggestion.uuid; // feedback needs both (C-15)
        button.addEventListener("click", () => accept(card, suggestion, article, button));
        group.append(button);
      }
      actions.append(group);
    }
    if (card.uuid) actions.append(dismissControl(card, index, article));
    article.append(actions);
    return article;
  }

  function dismissControl(card, index, article) {
    const box = element("div", { class: "card__dismiss" });
    const selectId = `card-${index}-reason`;
    box.append(element("label", { for: selectId }, "Override reason"));
    const select = element("select", { id: selectId, class: "override-reason" });
    select.append(element("option", { value: "" }, "(no reason)"));
    (card.overrideReasons || []).forEach((reason, i) => {
      select.append(element("option", { value: String(i) }, reason.display || reason.code));
    });
    box.append(select);
    // overrideReason.userComment (F-03): the clinician's own words, sent with or without a reason.
    const commentId = `card-${index}-comment`;
    box.append(element("label", { for: commentId }, "Comment"));
    const comment = element("input", {
      id: commentId,
      type: "text",
      class: "user-comment",
      maxlength: "500",
      placeholder: "optional",
    });
    box.append(comment);
    const button = element("button", { type: "button", class: "dismiss" }, "Dismiss");
    button.addEventListener("click", () => {
      const reason = select.value === "" ? null : card.overrideReasons[Number(select.value)];
      dismiss(card, reason, comment.value.trim(), article);
    });
    box.append(button);
    return box;
  }

  function renderCards(response) {
    const container = $("cards");
    container.replaceChildren();
    const cards = Array.isArray(response.cards) ? [...response.cards] : [];
    cards.sort((a, b) => (INDICATOR_ORDER[a.indicator] ?? 3) - (INDICATOR_ORDER[b.indicator] ?? 3));
    if (!cards.length) {
      container.append(element("p", { class: "empty" }, "No cards: the service has no advice."));
    }
    cards.forEach((card, index) => container.append(renderCard(card, index)));
    container.dataset.state = "done";
    const rules = cards.map((c) => (c.source && c.source.topic ? c.source.topic.code : "?"));
    showStatus(`${cards.length} card(s)${rules.length ? ": " + rules.join(", ") : ""}.`);
  }

  async function send(event) {
    event.preventDefault();
    resetFeedback();
    $("cards").dataset.state = "loading";
    showStatus("Sending…");
    try {
      // A fresh request each time, so each call has its own hookInstance.
      const built = await loadRequest();
      const result = await postJson(`/cds-services/${built.serviceId}`, built.request);
      $("response-json").textContent = pretty(result.body);
      if (!result.ok) {
        $("cards").replaceChildren();
        $("cards").dataset.state = "error";
        showStatus(`The service answered ${problem({ status: result.status }, result.body)}.`, true);
        return;
      }
      renderCards(result.body);
    } catch (error) {
      $("cards").dataset.state = "error";
      showStatus(`The call failed (${error.message}).`, true);
    }
  }

  // ---------------------------------------------------------------- handled cards

  const VERBS = { create: "Creates", update: "Updates", delete: "Removes" };

  function conceptText(concept) {
    if (!concept) return "";
    const coding = (concept.coding || []).find((c) => c.display) || {};
    return concept.text || coding.display || "";
  }

  // The draft order a delete action names, as the clinician knows it (its code text).
  function draftOrderText(reference) {
    const draft = state.request && state.request.context && state.request.context.draftOrders;
    const entry = ((draft && draft.entry) || []).find(
      (e) => e.resource && `${e.resource.resourceType}/${e.resource.id}` === reference
    );
    const text = entry ? conceptText(entry.resource.code) : "";
    return text ? `${text} (${reference})` : reference;
  }

  function fact(list, term, value) {
    if (!value) return;
    list.append(element("dt", {}, term), element("dd", {}, value));
  }

  // What the EHR would do on accepting one action: the resource it creates, read as an order.
  function actionPreview(action) {
    const verb = VERBS[action.type] || action.type;
    const box = element("div", { class: "preview", "data-action": action.type });
    const resource = action.resource;
    if (!resource) {
      // A delete names its target by resourceId, a relative reference (CDS Hooks 2.0).
      const target = action.resourceId ? draftOrderText(action.resourceId) : action.description;
      box.append(element("p", { class: "preview__title" }, `${verb} ${target}`));
      return box;
    }
    box.dataset.resourceType = resource.resourceType;
    const what = conceptText(resource.code) || action.description;
    box.append(element("p", { class: "preview__title" }, `${verb} ${resource.resourceType}: ${what}`));
    const facts = element("dl", { class: "preview__facts" });
    fact(facts, "Status", [resource.status, resource.intent, resource.priority].filter(Boolean).join(" · "));
    const codes = ((resource.code && resource.code.coding) || []).map((c) => c.display || c.code);
    fact(facts, "Codes", codes.join("; "));
    fact(facts, "Performer", conceptText(resource.performerType));
    const reasons = [
      ...(resource.reasonCode || []).map(conceptText),
      ...(resource.reasonReference || []).map((r) => r.display || r.reference),
    ];
    fact(facts, "Reason", reasons.filter(Boolean).join("; "));
    box.append(facts);
    const json = element("details", { class: "preview__json" });
    json.append(element("summary", {}, "FHIR JSON"));
    json.append(element("pre", { class: "json", "aria-label": `Resource the action would ${action.type}` },
      pretty(resource)));
    box.append(json);
    return box;
  }

  // The label a handled card carries, as an EHR marks it; one per card, created on first use.
  function outcome(article, kind, label) {
    let box = article.querySelector(".card__outcome");
    if (!box) {
      box = element("div", { class: "card__outcome", role: "status" });
      box.append(element("p", { class: "card__outcome-label" }));
      article.querySelector(".card__header").after(box);
    }
    article.dataset.outcome = kind;
    box.firstElementChild.textContent = label;
    return box;
  }

  function disableAll(article) {
    article.classList.add("card--handled");
    for (const control of article.querySelectorAll("button, select, input")) control.disabled = true;
  }

  // ---------------------------------------------------------------- feedback (F-02, SB-13)

  async function sendFeedback(item, onStored) {
    const payload = { feedback: [item] };
    const result = await postJson(`/cds-services/${state.serviceId}/feedback`, payload);
    const box = $("feedback");
    box.replaceChildren();
    const heading = result.ok ? "Feedback stored" : `Feedback refused (HTTP ${result.status})`;
    box.append(element("p", { class: result.ok ? "ok" : "status--error" }, heading));
    const sent = element("pre", { class: "json", "aria-label": "Feedback sent" }, pretty(payload));
    const answer = element("pre", {
      id: "feedback-response",
      class: "json",
      "aria-label": "Feedback response",
      "data-status": String(result.status),
      "data-stored": result.body && "stored" in result.body ? String(result.body.stored) : "",
    });
    answer.textContent = pretty(result.body);
    box.append(element("h3", {}, "Feedback sent"), sent, element("h3", {}, "Response"), answer);
    if (result.ok) onStored();
  }

  function accept(card, suggestion, article, button) {
    const item = {
      card: card.uuid,
      outcome: "accepted",
      acceptedSuggestions: [{ id: suggestion.uuid }],
      outcomeTimestamp: new Date().toISOString(),
    };
    return sendFeedback(item, () => {
      button.setAttribute("aria-pressed", "true");
      button.disabled = true;
      const box = outcome(article, "accepted", "Accepted");
      const preview = element("section", {
        class: "card__preview",
        "aria-label": `Accepted: ${suggestion.label}`,
      });
      preview.append(element("p", { class: "card__preview-label" }, suggestion.label));
      preview.append(...(suggestion.actions || []).map(actionPreview));
      box.append(preview);
      // selectionBehavior "any": the clinician may accept the other suggestions too;
      // "at-most-one" (or none given) closes the card. Accepting rules out dismissing.
      if (card.selectionBehavior === "any") {
        const dismissing = article.querySelector(".card__dismiss");
        for (const control of dismissing ? dismissing.querySelectorAll("*") : []) {
          control.disabled = true;
        }
      } else {
        disableAll(article);
      }
    });
  }

  function dismiss(card, reason, comment, article) {
    const item = {
      card: card.uuid,
      outcome: "overridden",
      outcomeTimestamp: new Date().toISOString(),
    };
    if (reason || comment) {
      item.overrideReason = {};
      if (reason) {
        item.overrideReason.reason = { code: reason.code, system: reason.system };
        if (reason.display) item.overrideReason.reason.display = reason.display;
      }
      if (comment) item.overrideReason.userComment = comment;
    }
    return sendFeedback(item, () => {
      const why = reason ? reason.display || reason.code : "no reason given";
      const box = outcome(article, "dismissed", `Dismissed: ${why}`);
      if (comment) box.append(element("p", { class: "card__outcome-comment" }, `“${comment}”`));
      disableAll(article);
    });
  }

  // ---------------------------------------------------------------- start

  async function start() {
    try {
      const [listing, discovery] = await Promise.all([
        getJson("/playground/patients"),
        getJson("/cds-services"),
      ]);
      offerHooks(discovery);
      state.patients = listing.patients;
      state.fhirServer = listing.fhirServer;
      const select = $("patient");
      for (const patient of listing.patients) {
        const expected = patient.expectedRules.join(", ") || "no card";
        const label = `${patient.scenario} · ${patient.name} → ${expected}`;
        select.append(element("option", { value: patient.id }, label));
      }
      $("patient").addEventListener("change", refresh);
      $("hook").addEventListener("change", refresh);
      for (const radio of document.querySelectorAll('input[name="data"]')) {
        radio.addEventListener("change", refresh);
      }
      $("choose").addEventListener("submit", send);
      syncControls(true);
      await refresh();
      document.body.dataset.ready = "true";
    } catch (error) {
      showStatus(`Could not load the demo patients (${error.message}).`, true);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
