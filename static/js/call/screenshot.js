// A picture of the patient's video: the practice asks, the patient consents, and the
// picture is saved on the practice's device only; it never goes to the server.
import { $, notice, role, t } from "./page.js";

export class Screenshots {
  // patientVideo(): the element that shows the patient (their tile in a group call).
  constructor({ send, patientVideo }) {
    this.send = send;
    this.patientVideo = patientVideo;
    this.dialog = $("#screenshot-consent");
    // Escape on the question counts as "Nicht erlauben", never as no answer.
    if (this.dialog) {
      this.dialog.addEventListener("cancel", (event) => { event.preventDefault(); this.answer(false); });
    }
  }

  request() {
    if (role !== "staff") return;
    this.send({ type: "screenshot-request" });
    notice(t("screenshotAsked"), "info");
  }

  // On the patient's page (the only one with the dialog).
  ask() {
    if (this.dialog && !this.dialog.open) this.dialog.showModal();
  }

  answer(granted) {
    if (this.dialog && this.dialog.open) this.dialog.close();
    this.send({ type: "screenshot-consent", granted: granted });
  }

  consented(granted) {
    if (role !== "staff") return;
    if (!granted) { notice(t("screenshotDenied"), "info"); return; }
    const video = this.patientVideo();
    if (!video.videoWidth) { notice(t("screenshotFailed"), "error"); return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      if (!blob) { notice(t("screenshotFailed"), "error"); return; }
      this.#save(blob);
      this.send({ type: "screenshot-taken" });
      notice(t("screenshotSaved"), "success");
    }, "image/png");
  }

  // A download at once, and a link in the page's list to save it again.
  #save(blob) {
    const url = URL.createObjectURL(blob);
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    const link = document.createElement("a");
    link.href = url;
    link.download = t("screenshotFile") + "-" + stamp + ".png";
    link.className = "btn btn-small";
    link.textContent = t("screenshotLink");
    const list = $("#screenshots");
    if (list) {
      const item = document.createElement("li");
      item.appendChild(link);
      list.appendChild(item);
      list.hidden = false;
    }
    link.click();
  }
}
