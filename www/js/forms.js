// Errors shown next to the field they concern, whether the page or the daemon found them.
import { $, $$ } from "./dom.js";

export function clearErrors(form) {
  for (const p of $$(".field-error, .form-error", form)) p.textContent = "";
  for (const input of $$("[aria-invalid]", form)) input.removeAttribute("aria-invalid");
}

/** Put `text` under the field named `name` (its data-field); false when the form has no such field. */
export function fieldError(form, name, text) {
  const field = $$(".field", form).find((f) => f.dataset.field === name);
  if (!field) return false;
  $(".field-error", field).textContent = text;
  const inputs = $$("input:not([hidden]), select:not([hidden])", field);
  for (const input of inputs) input.setAttribute("aria-invalid", "true");
  if (inputs[0] && !form.contains(document.activeElement)) inputs[0].focus();
  return true;
}

export function formError(form, text) {
  $(".form-error", form).textContent = text;
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
