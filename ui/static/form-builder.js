// The admin forms page: a field-by-field builder over the JSON definition box. Every change in
// the builder rewrites the JSON (and tells the live preview, which listens for "input"); after
// an edit typed into the JSON box, a button rebuilds the builder from it (on request, not on
// blur: a builder that changed size under the pointer would move the Save button mid-click).
// The server only ever sees the JSON, checked as always, so the builder cannot save anything
// the JSON path would refuse. Without this file the builder stays hidden and the JSON box works
// as before.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("form-builder");
  const box = document.getElementById("form-definition");
  if (!root || !box) return;
  // field type -> the definition keys it allows beyond the common ones (from policy.field_types)
  const TYPES = JSON.parse(root.dataset.types);
  const list = document.getElementById("builder-fields");
  const problem = document.getElementById("builder-problem");
  const sync = document.getElementById("builder-sync");
  let form = null;
  let writing = false;

  function parse() {
    try {
      const parsed = JSON.parse(box.value);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
    } catch {
      // shown below: the builder waits for JSON it can read
    }
    return null;
  }

  // the builder's state back into the JSON box; "input" updates the preview
  function write() {
    box.value = JSON.stringify(form, null, 2);
    writing = true;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    writing = false;
  }

  function control(labelText, input, className) {
    const label = document.createElement("label");
    label.className = "builder-control" + (className ? " " + className : "");
    label.append(labelText, input);
    return label;
  }

  function textInput(value, onChange, placeholder) {
    const input = document.createElement("input");
    input.value = value === undefined || value === null ? "" : String(value);
    if (placeholder) input.placeholder = placeholder;
    input.addEventListener("input", () => onChange(input.value));
    return input;
  }

  // min/max/max_length: numbers stay numbers (dates and date-times stay text)
  function typed(text) {
    const trimmed = text.trim();
    if (trimmed === "") return undefined;
    return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed;
  }

  function setKey(field, key, value) {
    if (value === undefined || value === "" || (Array.isArray(value) && !value.length)) {
      delete field[key];
    } else {
      field[key] = value;
    }
    write();
  }

  function button(text, className, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  function move(index, by) {
    const fields = form.fields;
    const target = index + by;
    if (target < 0 || target >= fields.length) return;
    [fields[index], fields[target]] = [fields[target], fields[index]];
    write();
    render();
    list.querySelectorAll(".builder-field")[target].querySelector(by < 0 ? ".up" : ".down").focus();
  }

  function fieldCard(field, index) {
    const card = document.createElement("fieldset");
    card.className = "builder-field";
    card.dataset.index = String(index);
    const legend = document.createElement("legend");
    legend.textContent = "Field " + (index + 1);
    card.append(legend);
    const type = document.createElement("select");
    type.className = "builder-type";
    for (const name of Object.keys(TYPES)) type.append(new Option(name, name));
    type.value = field.type || "text";
    type.addEventListener("change", () => {
      field.type = type.value;
      // keys the new type does not take would be refused: drop them
      for (const key of ["choices", "min", "max", "pattern", "max_length"]) {
        if (!TYPES[field.type].includes(key)) delete field[key];
      }
      write();
      render();
    });
    const required = document.createElement("input");
    required.type = "checkbox";
    required.className = "builder-required";
    required.checked = Boolean(field.required);
    required.addEventListener("change", () => setKey(field, "required", required.checked || undefined));
    card.append(
      control("Name", textInput(field.name, (v) => setKey(field, "name", v.trim()), "sample_id"), "builder-name"),
      control("Label", textInput(field.label, (v) => setKey(field, "label", v), "Sample ID"), "builder-label"),
      control("Type", type),
      control("Hint", textInput(field.help, (v) => setKey(field, "help", v), "shown under the field"), "builder-help"),
    );
    const allowed = TYPES[field.type || "text"] || [];
    if (allowed.includes("choices")) {
      const choices = document.createElement("textarea");
      choices.className = "builder-choices";
      choices.rows = 3;
      choices.value = (field.choices || []).join("\n");
      choices.addEventListener("input", () => setKey(field, "choices",
        choices.value.split("\n").map((c) => c.trim()).filter(Boolean)));
      card.append(control("Choices (one per line)", choices, "builder-choices-control"));
    }
    for (const key of ["min", "max", "max_length", "pattern"]) {
      if (!allowed.includes(key)) continue;
      const input = textInput(field[key], (v) => setKey(field, key, key === "pattern" ? v || undefined : typed(v)));
      input.className = "builder-" + key;
      card.append(control(key.replace("_", " "), input));
    }
    const requiredLabel = document.createElement("label");
    requiredLabel.className = "builder-control inline";
    requiredLabel.append(required, " Required");
    const actions = document.createElement("div");
    actions.className = "builder-actions";
    actions.append(
      requiredLabel,
      button("↑", "up", () => move(index, -1)),
      button("↓", "down", () => move(index, 1)),
      button("Remove", "remove danger-link", () => {
        form.fields.splice(index, 1);
        write();
        render();
      }),
    );
    actions.querySelector(".up").setAttribute("aria-label", "move field " + (index + 1) + " up");
    actions.querySelector(".down").setAttribute("aria-label", "move field " + (index + 1) + " down");
    card.append(actions);
    return card;
  }

  function render() {
    sync.hidden = true;
    form = parse();
    problem.hidden = form !== null;
    list.hidden = form === null;
    for (const id of ["builder-add", "builder-meta"]) document.getElementById(id).hidden = form === null;
    if (form === null) return;
    if (!Array.isArray(form.fields)) form.fields = [];
    for (const [id, key] of [["builder-form-name", "name"], ["builder-form-title", "title"],
      ["builder-form-description", "description"]]) {
      document.getElementById(id).value = form[key] || "";
    }
    list.replaceChildren(...form.fields.map(fieldCard));
  }

  for (const [id, key] of [["builder-form-name", "name"], ["builder-form-title", "title"],
    ["builder-form-description", "description"]]) {
    document.getElementById(id).addEventListener("input", (event) => {
      if (form) setKey(form, key, event.target.value);
    });
  }
  document.getElementById("builder-add").addEventListener("click", () => {
    if (!form) return;
    form.fields.push({ name: "field_" + (form.fields.length + 1), label: "", type: "text" });
    write();
    render();
    const cards = list.querySelectorAll(".builder-field");
    cards[cards.length - 1].querySelector(".builder-name input").select();
  });
  // typed into the JSON box (the advanced view): offer to rebuild the builder from it
  box.addEventListener("input", () => {
    if (!writing) sync.hidden = false;
  });
  document.getElementById("builder-sync-button").addEventListener("click", render);
  root.hidden = false;
  render();
});
