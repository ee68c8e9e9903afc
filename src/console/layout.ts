import { assetPath } from "./assets.ts";
import type { ConsolePrincipal } from "./auth.ts";
import { html, type Html } from "./html.ts";

// The page shell every console page uses:
//   page({ title, current: "tasks", principal, body, live: true })
// gives the whole document: doctype, lang, viewport, the stylesheet and script (no inline script or
// style: the CSP forbids them), a skip link, the nav with the current page marked (aria-current),
// who is signed in with a sign-out form, and `body` inside <main>. `live: true` lets the script
// open the /live stream so the page's `data-live` regions (live.ts) refresh themselves.

export type NavKey = "incidents" | "approvals" | "tasks" | "fleet" | "skills" | "status";

const NAV: { key: NavKey; href: string; label: string }[] = [
  { key: "incidents", href: "/incidents", label: "Incidents" },
  { key: "approvals", href: "/approvals", label: "Approvals" },
  { key: "tasks", href: "/tasks", label: "Tasks" },
  { key: "fleet", href: "/fleet", label: "Fleet" },
  { key: "skills", href: "/skills", label: "Skills" },
  { key: "status", href: "/status", label: "Status" },
];

export type PageArgs = {
  title: string;
  /** The nav entry to mark as the current page; null for pages outside the nav (sign-in, errors). */
  current: NavKey | null;
  /** Undefined on the sign-in page and for visitors not signed in: no nav, no sign-out. */
  principal: ConsolePrincipal | undefined;
  body: Html;
  /** True when the page has live regions: the script then listens to /live. */
  live?: boolean;
};

/** A hidden `_csrf` field for a form of this principal (nothing for bearer requests, which need none). */
export function csrfField(p: ConsolePrincipal | undefined): Html {
  return p?.csrf ? html`<input type="hidden" name="_csrf" value="${p.csrf}">` : html``;
}

export function page(a: PageArgs): Html {
  const nav = a.principal
    ? html`<nav aria-label="Main"><ul>${NAV.map(
        (n) =>
          html`<li><a href="${n.href}"${n.key === a.current ? html` aria-current="page"` : null}>${n.label}</a></li>`,
      )}</ul></nav>
      <div class="who"><span class="who-name" title="${a.principal.subject}">${a.principal.subject}</span>${
        a.principal.via === "session"
          ? html`<form method="post" action="/logout" class="inline">${csrfField(a.principal)}<button type="submit" class="link">Sign out</button></form>`
          : null
      }</div>`
    : null;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${a.title} · Pitcrew</title>
<link rel="stylesheet" href="${assetPath("console.css")}">
<script src="${assetPath("console.js")}" defer></script>
</head>
<body${a.live ? html` data-live-stream="/live"` : null}>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/">Pitcrew</a>${nav}</header>
<main id="main" tabindex="-1">
${a.body}
</main>
</body>
</html>
`;
}
