// Metadata browser: add and remove field-condition rows, offer the chosen form's fields, and
// apply the simple filters (form, owner, bucket, state, dates, search text, columns) as soon
// as they change. Without this file the page still works: the Filter button sends the form,
// it always renders a few empty rows, and a row is removed by clearing it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("filters");
  if (!form) return;
  // Condition rows are built in several steps (field, operator, value): they apply with the
  // Filter button, not on each change.
  form.addEventListener("change", (event) => {
    if (event.target.closest("#conditions")) return;
    form.requestSubmit();
  });
});

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("conditions");
  const addButton = document.getElementById("add-condition");
  const formChooser = document.getElementById("filter-form");
  const fieldsHolder = document.getElementById("form-fields");
  if (!box || !addButton) return;
  const fieldsByForm = JSON.parse(fieldsHolder ? fieldsHolder.dataset.fields : "{}");

  function rows() {
    return Array.from(box.querySelectorAll(".condition"));
  }

  function isEmpty(row) {
    return !row.querySelector(".where-field").value && !row.querySelector(".where-value").value;
  }

  // A field chooser for the chosen form: a list of its fields; with no form, free text
  // suggesting every field any form has.
  function fieldChooser(current) {
    const fields = fieldsByForm[formChooser ? formChooser.value : ""];
    let chooser;
    if (fields) {
      chooser = document.createElement("select");
      chooser.append(new Option("—", ""));
      for (const [name, label] of fields) chooser.append(new Option(label, name));
      if (current && !fields.some(([name]) => name === current)) {
        chooser.append(new Option(current, current));
      }
    } else {
      chooser = document.createElement("input");
      chooser.setAttribute("list", "all-fields");
      chooser.autocomplete = "off";
    }
    chooser.name = "where_field";
    chooser.className = "where-field";
    chooser.value = current;
    return chooser;
  }

  function wire(row) {
    const remove = row.querySelector(".remove-condition");
    remove.hidden = false;
    remove.addEventListener("click", () => {
      if (rows().length > 1) {
        row.remove();
      } else {
        // keep one row to type into: clear it instead
        row.querySelector(".where-field").value = "";
        row.querySelector(".where-value").value = "";
      }
    });
  }

  function addRow() {
    const template = rows()[0];
    const row = template.cloneNode(true);
    row.classList.remove("invalid");
    for (const error of row.querySelectorAll(".condition-error")) error.remove();
    row.querySelector(".where-field").replaceWith(fieldChooser(""));
    row.querySelector(".where-op").selectedIndex = 0;
    row.querySelector(".where-value").value = "";
    box.insertBefore(row, addButton);
    wire(row);
    return row;
  }

  // With JavaScript, rows are added on demand: keep the used ones and a single empty row.
  const empty = rows().filter(isEmpty);
  for (const row of empty.slice(rows().length > empty.length ? 0 : 1)) row.remove();
  for (const row of rows()) wire(row);
  if (rows().every((row) => !isEmpty(row))) addRow();
  addButton.hidden = false;
  addButton.addEventListener("click", () => {
    addRow().querySelector(".where-field").focus();
  });

  // Send each complete row as one where=FIELD<op>VALUE, as the page's own links and the JSON
  // API spell conditions, so the address after "Filter" is the one a script would use. A half
  // filled row goes as it is, so the server can say beside it what is missing.
  box.closest("form").addEventListener("formdata", (event) => {
    const data = event.formData;
    for (const name of ["where_field", "where_op", "where_value"]) data.delete(name);
    for (const row of rows()) {
      const field = row.querySelector(".where-field").value.trim();
      const op = row.querySelector(".where-op").value;
      const value = row.querySelector(".where-value").value.trim();
      if (field && value) {
        data.append("where", field + op + value);
      } else if (field || value) {
        data.append("where_field", field);
        data.append("where_op", op);
        data.append("where_value", value);
      }
    }
  });

  if (formChooser) {
    formChooser.addEventListener("change", () => {
      for (const row of rows()) {
        const old = row.querySelector(".where-field");
        old.replaceWith(fieldChooser(old.value));
      }
    });
  }
});
