// main.ts — the dashboard's shell: the four views by URL hash (#/score,
// #/explore, #/sweep, #/service; the browser's back button works), and the
// API settings form in the header.
import { getSettings, setSettings } from "./app";
import "./style.css";
import { renderExplore } from "./views/explore";
import { renderScore } from "./views/score";
import { renderService, stopService } from "./views/service";
import { renderSweep } from "./views/sweep";

const views: Record<string, (root: HTMLElement) => void> = {
  score: renderScore,
  explore: renderExplore,
  sweep: renderSweep,
  service: renderService,
};

function route(): void {
  const name = location.hash.replace(/^#\/?/, "") || "score";
  const view = views[name] ?? renderScore;
  const root = document.getElementById("view") as HTMLElement;
  stopService();
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `epsinas — ${name}`;
  view(root);
}

const form = document.getElementById("settings") as HTMLFormElement;
const baseIn = document.getElementById("api-base") as HTMLInputElement;
const tokenIn = document.getElementById("api-token") as HTMLInputElement;
const s = getSettings();
baseIn.value = s.baseUrl;
tokenIn.value = s.token;
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  setSettings({ baseUrl: baseIn.value, token: tokenIn.value });
  route();
});

window.addEventListener("hashchange", route);
route();
