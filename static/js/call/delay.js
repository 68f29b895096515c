// The practice's delay notice in the waiting room (patients/delay.py): a pick shown in
// the page's language, or the practice's own text, set as text (never as markup).
import { t } from "./page.js";

export function showDelay(message) {
  const box = document.getElementById("delay-notice");
  if (!box) return;
  let text = "";
  if (Number.isInteger(message.minutes)) text = t("delayMinutes", { n: message.minutes });
  else if (typeof message.text === "string") text = message.text;
  box.textContent = text;
  box.hidden = !text;
}
