// Errors shown next to the field they concern, whether the page or the daemon found them.
import { $, $$ } from "./dom.js";

/** Forget every complaint in `form`: done before each try, so only the new ones show. */
export function clearErrors(form) {
  for (const p of $$(".field-error, .form-error", form)) p.textContent = "";
  for (const input of $$("[aria-invalid]", form)) input.removeAttribute("aria-invalid");
}

/** Put `text` under the field named `name` (its data-field); false when the form has no such field. */
export function fieldError(form, name, text) {
  const field = $$(".field", form).find((f) => f.dataset.field === name);
  if (!field) return false;
  const error = $(".field-error", field);
  error.textContent = text;
  const inputs = $$("input:not([hidden]), select:not([hidden])", field);
  for (const input of inputs) {
    input.setAttribute("aria-invalid", "true");
    if (!error.id) error.id = `${input.id || name.replace(/\W/g, "-")}-error`;
    input.setAttribute("aria-describedby", error.id);
  }
  // Once the person changes the field, its old complaint no longer holds ("input" only: a
  // "change" may come on leaving the field, after a newer complaint about the same value).
  field.addEventListener("input", () => clearField(field), { once: true });
  if (inputs[0] && !form.contains(document.activeElement)) inputs[0].focus();
  else if ($$(".field-error", form).find((p) => p.textContent) === error) field.scrollIntoView({ block: "nearest" });
  return true;
}

function clearField(field) {
  $(".field-error", field).textContent = "";
  for (const input of $$("[aria-invalid]", field)) input.removeAttribute("aria-invalid");
}

/** An error about the whole form, at its top and scrolled into sight: it may come long after
 * the click (an import's file is read first) with the form off the screen. */
export function formError(form, text) {
  const error = $(".form-error", form);
  error.textContent = text;
  error.scrollIntoView({ block: "nearest" });
}

/**
 * Show a refusal by the daemon. Its error names a path ("recipe.relation", "message.watts",
 * "settings.node.name"); the form's fields are named by its tail, so leading parts are dropped
 * until a field matches, else the whole message goes at the top of the form.
 */
export function showApiError(form, err) {
  if (err.login) {
    formError(form, "Log in to make changes.");
    return;
  }
  const parts = (err.field || "").split(".");
  for (let i = 0; i < parts.length && err.field; i++) {
    if (fieldError(form, parts.slice(i).join("."), err.problem)) return;
  }
  formError(form, err.message);
}

/** Run `work` with the form's buttons disabled, so one tap sends one request. */
export async function whileBusy(form, work) {
  const buttons = $$("button", form);
  for (const b of buttons) b.disabled = true;
  try {
    return await work();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}
