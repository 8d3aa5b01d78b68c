// Hostile strings for the inbox's escaping tests, drawn from a seed
// (scripts/seeded-random.mjs): markup, attribute and script breakouts,
// entities, quotes, controls, line separators, lone surrogates, bidi and
// zero-width characters, very long runs, mixed with ordinary text. The same
// seed gives the same strings; a failing test prints its seed (VETO_SEED).
import { seededRandom } from "../../scripts/seeded-random.mjs";

const PIECES = [
  "<script>alert(1)</script>",
  "</td></tr></table><img src=x onerror=alert(1)>",
  '"><svg onload=alert(1)>',
  "'><iframe src=javascript:alert(1)>",
  "</textarea><script>alert(2)</script>",
  "<!--",
  "-->",
  "<![CDATA[",
  "&lt;b&gt;",
  "&#60;i&#62;",
  "&amp;",
  '" onmouseover="alert(1)',
  "' onfocus='alert(1)",
  "javascript:alert(1)",
  "<style>*{display:none}</style>",
  '<a href="https://evil.example">x</a>',
  "<base href=https://evil.example/>",
  '<meta http-equiv="refresh" content="0;url=https://evil.example">',
  "`${x}`",
  "{{constructor.constructor('alert(1)')()}}",
  "\u0000",
  "\u2028\u2029",
  "\u202e\u200b\ufeff",
  "\ud800",
  "\udfff",
  "🙂",
  "e\u0301",
  "\r\n",
  "\t",
  "__proto__",
  "constructor",
  "Acme",
  "48,000",
  " ",
];

/** `count` hostile strings from `seed`; some are longer than any display bound. */
export function hostileStrings(seed: number, count: number): string[] {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts: string[] = [];
    const n = 1 + Math.floor(random() * 6);
    for (let j = 0; j < n; j++) parts.push(pick(PIECES));
    // Now and then a very long value: it must be cut, never break the page.
    if (random() < 0.15) parts.push(pick(PIECES).repeat(400 + Math.floor(random() * 400)));
    out.push(parts.join(random() < 0.5 ? "" : " "));
  }
  return out;
}

/** The tags the inbox's own markup uses: anything else in a page came from a value. */
export const OWN_TAGS = new Set([
  "html",
  "head",
  "meta",
  "title",
  "link",
  "script",
  "body",
  "a",
  "header",
  "p",
  "nav",
  "div",
  "span",
  "strong",
  "form",
  "input",
  "button",
  "main",
  "h1",
  "h2",
  "h3",
  "article",
  "dl",
  "dt",
  "dd",
  "time",
  "code",
  "table",
  "caption",
  "thead",
  "tbody",
  "tr",
  "th",
  "td",
  "em",
  "ul",
  "li",
  "label",
  "textarea",
  "details",
  "summary",
  "select",
  "option",
]);

/** Every tag name opened or closed in `html`. */
export function tagsIn(html: string): Set<string> {
  return new Set([...html.matchAll(/<\/?([a-zA-Z][\w-]*)/g)].map((m) => m[1]!.toLowerCase()));
}

export function seedOf(): number {
  return Number(process.env["VETO_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
}
