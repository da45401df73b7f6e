// Reads the block-style YAML subset that deploy/kubernetes/ is written in (no YAML package is
// installed): `---` documents, block mappings and sequences (`- key: value` items included),
// `#` comments, plain, "double" and 'single' quoted scalars. Anything else (flow collections,
// anchors, block scalars, tabs) is an error, so a manifest written outside the subset fails the
// test instead of being misread.

type Yaml = null | boolean | number | string | Yaml[] | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  number: number;
}

function scalar(text: string, line: Line): Yaml {
  if (/^"(?:[^"\\]|\\.)*"$/.test(text)) return JSON.parse(text) as string;
  if (/^'(?:[^']|'')*'$/.test(text)) return text.slice(1, -1).replace(/''/g, "'");
  if (/^[[{&*!|>%@`]/.test(text)) throw new Error(`line ${line.number}: outside the YAML subset: ${text}`);
  if (text === "" || text === "null" || text === "~") return null;
  if (text === "true" || text === "false") return text === "true";
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

function stripComment(text: string): string {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || text[i - 1] === " ")) return text.slice(0, i).trimEnd();
  }
  return text.trimEnd();
}

class Reader {
  private at = 0;
  constructor(private readonly lines: Line[]) {}

  document(): Yaml {
    const value = this.lines.length ? this.block(this.lines[0].indent) : null;
    if (this.at < this.lines.length) throw new Error(`line ${this.lines[this.at].number}: unexpected indentation`);
    return value;
  }

  private block(indent: number): Yaml {
    const first = this.lines[this.at];
    return first.text === "-" || first.text.startsWith("- ") ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): Yaml[] {
    const items: Yaml[] = [];
    for (let line = this.lines[this.at]; line?.indent === indent && (line.text === "-" || line.text.startsWith("- ")); line = this.lines[this.at]) {
      const rest = line.text.slice(1).trimStart();
      if (rest === "") {
        this.at++;
        items.push(this.nested(indent));
      } else if (/^[^"'\s][^:]*:( |$)/.test(rest)) {
        // "- key: value": a mapping whose first key sits on the dash's line.
        this.lines[this.at] = { indent: indent + 2, text: rest, number: line.number };
        items.push(this.mapping(indent + 2));
      } else {
        this.at++;
        items.push(scalar(rest, line));
      }
    }
    return items;
  }

  private mapping(indent: number): { [key: string]: Yaml } {
    const map: { [key: string]: Yaml } = {};
    for (let line = this.lines[this.at]; line?.indent === indent; line = this.lines[this.at]) {
      const m = /^([^"'\s][^:]*):(?: (.*))?$/.exec(line.text);
      if (!m) throw new Error(`line ${line.number}: expected "key: value": ${line.text}`);
      if (m[1] in map) throw new Error(`line ${line.number}: key ${m[1]} twice`);
      this.at++;
      const rest = (m[2] ?? "").trim();
      map[m[1]] = rest === "" ? this.nested(indent) : scalar(rest, line);
    }
    return map;
  }

  /** The value on the lines below a key or dash: deeper, or a sequence at the key's own indent. */
  private nested(indent: number): Yaml {
    const next = this.lines[this.at];
    if (!next) return null;
    if (next.indent > indent) return this.block(next.indent);
    if (next.indent === indent && (next.text === "-" || next.text.startsWith("- "))) return this.sequence(indent);
    return null;
  }
}

export function parseYamlDocuments(source: string): Yaml[] {
  const documents: Line[][] = [[]];
  source.split("\n").forEach((raw, i) => {
    if (raw.includes("\t")) throw new Error(`line ${i + 1}: tab`);
    if (/^---\s*$/.test(raw)) return documents.push([]);
    const text = stripComment(raw);
    if (text.trim() === "") return;
    documents.at(-1)!.push({ indent: text.length - text.trimStart().length, text: text.trim(), number: i + 1 });
  });
  return documents.filter((d) => d.length > 0).map((lines) => new Reader(lines).document());
}
