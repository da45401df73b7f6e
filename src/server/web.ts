// The browser pages: the chat at `/` (for a browser; API clients still get "Ollama is running")
// and the dashboard at `/dashboard`, their files from src/web (dist/web once built), and the two
// libraries they use straight from node_modules, so the pages work offline.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { NextFunction, RequestHandler, Response } from "express";
import { ForbiddenError, NotFoundError } from "../api/errors.js";

const WEB_DIR = fileURLToPath(new URL("../web/", import.meta.url));
const requirePackage = createRequire(import.meta.url);
const MARKED_FILE = requirePackage.resolve("marked");
const HIGHLIGHT_DIR = path.dirname(requirePackage.resolve("highlight.js/package.json"));

const SEND_OPTIONS = { dotfiles: "deny", maxAge: 0 } as const;

/** Express 5 gives a `*name` wildcard as its path segments. */
function wildcard(value: unknown): string {
  return Array.isArray(value) ? value.join("/") : String(value);
}

// The pages load nothing from elsewhere: scripts, styles and fetches stay on this server (and
// Markdown from a model cannot run script even if it got past the renderer's escaping).
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** Sends `file` from under `root` (send refuses paths that leave it); a missing file is a 404. */
function sendFrom(root: string, file: string, res: Response, next: NextFunction): void {
  res.sendFile(file, { ...SEND_OPTIONS, root }, (err?: Error & { status?: number }) => {
    if (!err) return;
    if (err.status === 404) next(new NotFoundError(`${file} not found`));
    else if (err.status === 403) next(new ForbiddenError(`${file} is not served`));
    else next(err);
  });
}

function sendPage(file: string, res: Response, next: NextFunction): void {
  res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  sendFrom(WEB_DIR, file, res, next);
}

/**
 * highlight.js ships its core as CommonJS only (es/core.js re-exports lib/core.js), and it needs
 * no other module, so the page gets it as an ES module by wrapping it; its languages are ES modules.
 */
let highlightModule: string | undefined;
function highlightCore(): string {
  highlightModule ??= `const module = { exports: {} };\n${readFileSync(path.join(HIGHLIGHT_DIR, "lib/core.js"), "utf8")}\nexport default module.exports;\n`;
  return highlightModule;
}

export function webHandlers(apiRoot: RequestHandler) {
  return {
    /** A browser (asking for HTML first) gets the chat; everyone else what Ollama answers. */
    root: (req, res, next) => {
      if (req.accepts(["text/plain", "text/html"]) !== "text/html") return apiRoot(req, res, next);
      sendPage("index.html", res, next);
    },
    dashboard: (_req, res, next) => {
      sendPage("dashboard.html", res, next);
    },
    asset: (req, res, next) => {
      sendFrom(WEB_DIR, wildcard(req.params.file), res, next);
    },
    marked: (_req, res, next) => {
      sendFrom(path.dirname(MARKED_FILE), path.basename(MARKED_FILE), res, next);
    },
    highlightCore: (_req, res) => {
      res.type("text/javascript").send(highlightCore());
    },
    highlightLanguage: (req, res, next) => {
      sendFrom(path.join(HIGHLIGHT_DIR, "es/languages"), wildcard(req.params.file), res, next);
    },
    highlightStyle: (req, res, next) => {
      sendFrom(path.join(HIGHLIGHT_DIR, "styles"), wildcard(req.params.file), res, next);
    },
  } satisfies Record<string, RequestHandler>;
}
