// A call that stays broken this long is ended for both (each side's page gives up; the
// one whose socket is open tells the server, so the other learns it on return).
import { clearErrorNotice, root } from "./page.js";

const LOST_AFTER_MS = (Number(root.dataset.lostAfter) || 300) * 1000;

export class LostWatch {
  constructor(onLost) {
    this.onLost = onLost;
    this.timer = null;
    this.lastView = null;
  }

  // view: what the page shows now; broken: whether the connection is down for this page.
  update(view, broken) {
    if (view === "connected" && this.lastView === "reconnecting") clearErrorNotice();
    this.lastView = view;
    if (!broken) {
      clearTimeout(this.timer);
      this.timer = null;
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.onLost();
      }, LOST_AFTER_MS);
    }
  }
}
