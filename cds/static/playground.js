// The playground acts as a small EHR: it builds a hook call, sends it, renders cards, sends feedback.
"use strict";

(function () {
  const INDICATOR_ORDER = { critical: 0, warning: 1, info: 2 };
  const state = { patients: [], fhirServer: null, serviceId: null, request: null };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- markdown (card.detail)

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  const LINK = /\[([^\]]+)\]\(([^)\s]+)\)/g;

  function emphasis(escaped) {
    return escaped
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/__([^_]+)__/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>")
      .replace(/(^|[^\w])_([^_\s][^_]*)_(?=[^\w]|$)/g, "$1<em>$2</em>");
  }

  function linksAndEmphasis(escaped) {
    const out = [];
    let last = 0;
    for (const match of escaped.matchAll(LINK)) {
      out.push(emphasis(escaped.slice(last, match.index)));
      const [, label, url] = match;
      // Only http(s) targets become links; javascript:, data: and the rest stay plain text.
      out.push(
        /^https?:\/\//i.test(url)
          ? `<a href="${url}" target="_blank" rel="noopener noreferrer">${emphasis(label)}</a>`
          : emphasis(label)
      );
      last = match.index + match[0].length;
    }
    out.push(emphasis(escaped.slice(last)));
    return out.join("");
  }

  // GFM backslash escapes (`\*`, `\[`, `\-`…) on already-escaped text, where `<`, `&` and the
  // quotes arrive as entities.
  const BACKSLASH = /\\(&(?:amp|lt|gt|quot|#39);|[!-/:-@[-`{-~])/g;

  // Works on already-escaped text, so it can only add the tags written here; code spans are
  // left alone, links keep their URL untouched by emphasis.
  function inline(escaped) {
    const literals = [];
    // Escaped characters hide behind placeholders (NUL never survives in card text) until the end.
    const hidden = escaped.replace(/\u0000/g, "").replace(BACKSLASH, (whole, literal) => {
      literals.push(literal);
      return `\u0000${literals.length - 1}\u0000`;
    });
    return hidden
      .split(/(`[^`]+`)/)
      .map((part) =>
        /^`[^`]+`$/.test(part) ? `<code>${part.slice(1, -1)}</code>` : linksAndEmphasis(part)
      )
      .join("")
      .replace(/\u0000(\d+)\u0000/g, (whole, index) => literals[Number(index)]);
  }

  function markdown(source) {
    const lines = escapeHtml(source).split(/\r?\n/);
    const out = [];
    let list = null; // "ul" or "ol" while inside a list
    let paragraph = [];
    const flushParagraph = () => {
      if (paragraph.length) out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
      paragraph = [];
    };
    const closeList = () => {
      if (list) out.push(`</${list}>`);
      list = null;
    };
    for (const line of lines) {
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (bullet || numbered) {
        flushParagraph();
        const kind = bullet ? "ul" : "ol";
        if (list !== kind) {
          closeList();
          out.push(`<${kind}>`);
          list = kind;
        }
        out.push(`<li>${inline((bullet || numbered)[1])}</li>`);
      } else if (heading) {
        flushParagraph();
        closeList();
        // Card headings sit below the card's own heading level.
        const level = Math.min(6, heading[1].length + 3);
        out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      } else if (!line.trim()) {
        flushParagraph();
        closeList();
      } else {
        closeList();
        paragraph.push(line.trim());
      }
    }
    flushParagraph();
    closeList();
    return out.join("\n");
  }

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

  function syncControls() {
    const patient = selectedPatient();
    if (!patient) return;
    $("patient-description").textContent =
      `${patient.description} Expected: ${patient.expectedRules.join(", ") || "no card"}` +
      ` (${patient.hook}).`;
    for (const option of $("hook").options) {
      option.disabled = !patient.hooks.includes(option.value);
    }
    if ($("hook").selectedOptions[0].disabled) $("hook").value = "patient-view";
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

  async function refresh() {
    syncControls();
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
      detail.innerHTML = markdown(card.detail); // escaped first, see markdown()
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

  // ---------------------------------------------------------------- feedback (F-02, SB-13)

  // What the EHR would do on accepting: each action with the FHIR resource it creates.
  function actionsShown(suggestion) {
    const shown = [];
    for (const action of suggestion.actions || []) {
      shown.push(element("h3", {}, `Would ${action.type}: ${action.description}`));
      if (action.resource) {
        const label = `Resource the action would ${action.type}`;
        shown.push(element("pre", { class: "json action-resource", "aria-label": label },
          pretty(action.resource)));
      }
    }
    return shown;
  }

  async function sendFeedback(item, onStored, suggestion) {
    const payload = { feedback: [item] };
    const result = await postJson(`/cds-services/${state.serviceId}/feedback`, payload);
    const box = $("feedback");
    box.replaceChildren();
    const heading = result.ok ? "Feedback stored" : `Feedback refused (HTTP ${result.status})`;
    box.append(element("p", { class: result.ok ? "ok" : "status--error" }, heading));
    if (suggestion) box.append(...actionsShown(suggestion));
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

  function disableAll(article) {
    article.classList.add("card--handled");
    for (const control of article.querySelectorAll("button, select, input")) control.disabled = true;
  }

  function accept(card, suggestion, article, button) {
    const item = {
      card: card.uuid,
      outcome: "accepted",
      acceptedSuggestions: [{ id: suggestion.uuid }],
      outcomeTimestamp: new Date().toISOString(),
    };
    return sendFeedback(
      item,
      () => {
        button.setAttribute("aria-pressed", "true");
        button.disabled = true;
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
      },
      suggestion
    );
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
    return sendFeedback(item, () => disableAll(article));
  }

  // ---------------------------------------------------------------- start

  async function start() {
    try {
      const listing = await getJson("/playground/patients");
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
      await refresh();
      document.body.dataset.ready = "true";
    } catch (error) {
      showStatus(`Could not load the demo patients (${error.message}).`, true);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
