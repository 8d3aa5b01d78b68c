/**
 * The JSON text of the numbers near the top of a call, as written: JSON.parse
 * turns `250000.00000000001` into the double 250000 and the text is gone, but
 * an amount must be judged by its text (docs/contract.md §9 "Amount
 * precision"). For front ends that hold the call's text (the CLI).
 */

/**
 * The text of every number in `text` (JSON that JSON.parse accepted) whose
 * path has at most `depth` keys, by JSON pointer ("/arguments/amount").
 * Duplicate keys resolve as JSON.parse resolves them: the last one wins, with
 * everything under it. Deeper values are skipped without recursion.
 */
export function numberTexts(text: string, depth: number): Map<string, string> {
  const found = new Map<string, string>();
  let i = 0;

  const space = (): void => {
    for (let c = text.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++i));
  };
  /** Past the string starting at i (a quote); returns its source text. */
  const string = (): string => {
    const start = i;
    for (i += 1; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x5c) i += 1;
      else if (c === 0x22) break;
    }
    i += 1;
    return text.slice(start, i);
  };
  /** Past the value starting at i, whatever it is, without descending. */
  const skip = (): void => {
    const c = text[i];
    if (c === '"') {
      string();
      return;
    }
    if (c !== "{" && c !== "[") {
      while (i < text.length && !",]} \t\n\r".includes(text[i] as string)) i += 1;
      return;
    }
    let open = 0;
    do {
      const d = text[i];
      if (d === '"') {
        string();
        continue;
      }
      if (d === "{" || d === "[") open += 1;
      else if (d === "}" || d === "]") open -= 1;
      i += 1;
    } while (open > 0 && i < text.length);
  };
  const forget = (pointer: string): void => {
    for (const key of found.keys()) if (key === pointer || key.startsWith(`${pointer}/`)) found.delete(key);
  };
  const value = (pointer: string, level: number): void => {
    space();
    const c = text[i];
    if (c === "{" && level < depth) {
      i += 1;
      space();
      while (text[i] === '"') {
        const key = JSON.parse(string()) as string;
        const child = `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
        forget(child);
        space();
        i += 1; // ':'
        value(child, level + 1);
        space();
        if (text[i] === ",") {
          i += 1;
          space();
        }
      }
      i += 1; // '}'
      return;
    }
    if (c === "[" && level < depth) {
      i += 1;
      space();
      for (let index = 0; i < text.length && text[i] !== "]"; index++) {
        const before = i;
        value(`${pointer}/${index}`, level + 1);
        // Not JSON (a "}" where a value should be): stop rather than read the same place forever.
        if (i === before) throw new Error(`not JSON text at offset ${i}`);
        space();
        if (text[i] === ",") i += 1;
      }
      i += 1; // ']'
      return;
    }
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
      const start = i;
      skip();
      found.set(pointer, text.slice(start, i));
      return;
    }
    skip();
  };

  value("", 0);
  return found;
}
