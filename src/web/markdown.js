// Markdown of model answers to HTML: marked for the Markdown, highlight.js for code blocks. A
// model's text is untrusted: raw HTML is shown as text, links keep to http(s) and mailto, and
// images become links (the page loads nothing from elsewhere).
import { Marked } from "/web/vendor/marked.js";
import hljs from "/web/vendor/highlight/core.js";

// The languages people ask models for most; highlight.js's own "common" set, less the rare ones.
const LANGUAGES = [
  "bash", "c", "cpp", "csharp", "css", "diff", "go", "java", "javascript", "json", "kotlin", "markdown",
  "php", "python", "ruby", "rust", "shell", "sql", "swift", "typescript", "xml", "yaml",
];
await Promise.all(LANGUAGES.map(async (name) => {
  hljs.registerLanguage(name, (await import(`/web/vendor/highlight/languages/${name}.js`)).default);
}));

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function safeUrl(href) {
  try {
    const url = new URL(href, location.href);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    link({ href, title, tokens }) {
      const text = this.parser.parseInline(tokens);
      const url = safeUrl(href);
      if (url === null) return text;
      const titleAttr = title ? ` title="${escapeHtml(title)}"` : "";
      return `<a href="${escapeHtml(url)}"${titleAttr} target="_blank" rel="noopener noreferrer">${text}</a>`;
    },
    image({ href, text }) {
      const url = safeUrl(href);
      const label = escapeHtml(text || href);
      return url === null ? label : `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${label}</a>`;
    },
    code({ text, lang }) {
      const language = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      const known = language !== "" && hljs.getLanguage(language) !== undefined;
      const highlighted = known ? hljs.highlight(text, { language, ignoreIllegals: true }).value : escapeHtml(text);
      const label = known ? language : "text";
      return `<div class="code-block"><div class="code-head"><span>${escapeHtml(label)}</span><button type="button" class="copy">Copy</button></div>` +
        `<pre><code class="hljs language-${escapeHtml(label)}">${highlighted}</code></pre></div>`;
    },
  },
});

export function renderMarkdown(text) {
  return marked.parse(text);
}

/** Copy buttons of code blocks, for every block under `root` (one listener). */
export function enableCopyButtons(root) {
  root.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("code").textContent;
    void navigator.clipboard?.writeText(code).then(() => {
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
  });
}
