/**
 * A grammar of destinations (docs/contract.md §3, "destination hosts") for
 * property tests, and an oracle that reads each one with real parsers:
 * Node's WHATWG `URL` for special schemes (and for what a tool that puts
 * "http://" before a bare host sees), an RFC 3986 reading (Appendix B) for
 * every `scheme://`, an RFC 6068 reading for `mailto:` and RFC 5322's
 * "domain after the last @" for addresses. The oracle never looks at the
 * policy: it says which hosts a parser that sends the data would use.
 */
import fc from "fast-check";

/** Hosts the property tests block (the fixture's list, an IPv4 and an IPv6 address). */
export const BLOCKED = ["pastebin.com", "gmail.com", "dropbox.com", "transfer.sh", "10.0.0.1", "[2001:db8::1]"];

/** Hosts the property tests' allow-listed tenant may send to. */
export const ALLOWED = ["hooks.example.com", "example.org", "[::1]", "192.168.1.20"];

export type ItemKind = "special" | "non-special" | "mailto" | "address" | "bare" | "odd";

export interface GeneratedItem {
  readonly kind: ItemKind;
  readonly text: string;
}

export interface GeneratedDestination {
  readonly items: readonly GeneratedItem[];
  /** The items joined by separators, with the spaces and control characters the grammar added. */
  readonly destination: string;
}

/** Mostly one of `common`, sometimes (one time in `1 + weight`) one of `rare`. */
function mostly<T>(common: readonly T[], rare: readonly T[], weight = 3): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: fc.constantFrom(...common), weight }, { arbitrary: fc.constantFrom(...rare), weight: 1 });
}

const BLOCKED_DOMAINS = ["pastebin.com", "gmail.com", "dropbox.com", "transfer.sh"];
const OTHER_DOMAINS = [
  "hooks.example.com",
  "example.org",
  "files.example.net",
  "notgmail.com",
  "pastebin.com.evil.example",
  "localhost",
  "hooks_1.example.com",
  "xn--mnchen-3ya.example",
];

/** A host name, respelled: case, trailing dots, a percent escape. */
const domain = fc
  .tuple(
    fc.constantFrom("", "", "eu.", "a.b."),
    mostly(OTHER_DOMAINS, BLOCKED_DOMAINS, 4),
    fc.nat(7),
    mostly(["", "."], [".."]),
    fc.nat(19),
  )
  .map(([sub, base, casing, dots, escape]) => {
    let name = `${sub}${base}`;
    if (casing === 1) name = name.toUpperCase();
    if (casing === 2) name = [...name].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join("");
    if (escape === 0) name = name.replace(".", "%2E");
    if (escape === 1) name = name.replace("a", "%61");
    return `${name}${dots}`;
  });

/** IPv4 and IPv6 literals, some in forms WHATWG or inet_aton read as the same address. */
const address = fc.constantFrom(
  "10.0.0.1",
  "192.168.1.20",
  "10.1",
  "0x0a.0.0.1",
  "167772161",
  "010.0.0.1",
  "10.0.0.1.",
  "192.168.1.020",
  "[2001:db8::1]",
  "[2001:DB8:0:0:0:0:0:1]",
  "[2001:db8:0::0001]",
  "[::1]",
  "[0:0:0:0:0:0:0:1]",
  "[::ffff:10.0.0.1]",
  "[2001:db8::1%25eth0]",
  "[1::2::3]",
);

const host = fc.oneof({ arbitrary: domain, weight: 6 }, { arbitrary: address, weight: 1 });

/** User-info, with and without "\", "@" and ":" (a host written before a "\" is the classic trick). */
const userinfo = fc.oneof(
  { arbitrary: mostly(["", "", "user", "user:pw"], ["a@b", "u:p@ss", "x\\y", "a%40gmail.com", "user:pass:word", "@"]), weight: 6 },
  { arbitrary: host.map((h) => `${h}\\`), weight: 1 },
  { arbitrary: host.map((h) => `${h}\\:pw`), weight: 1 },
);

const port = mostly(["", "", ":443", ":8080", ":0080", ":"], [":99999", ":x"], 5);
const path = mostly(["", "/", "/x", "/raw/abc"], ["/a://pastebin.com/", "/@gmail.com", "\\x", "/x\\@gmail.com"], 2);
const query = mostly(["", "?q=1"], ["?u=https://pastebin.com", "?next=a@gmail.com", "?a=1,2", "?x=://y@dropbox.com"], 2);
const fragment = mostly(["", "#frag"], ["#://gmail.com", "#@pastebin.com"], 2);

const tail = fc.tuple(port, path, query, fragment).map((parts) => parts.join(""));
const withUser = (user: string): string => (user === "" ? "" : `${user}@`);

const specialUrl = fc
  .tuple(
    fc.constantFrom("http", "https", "ws", "wss", "ftp", "file", "HTTPS", "Http", "FILE"),
    mostly(["//"], ["/", "", "\\\\", "///", "/\\"], 4),
    userinfo,
    host,
    tail,
  )
  .map(([scheme, slashes, user, h, rest]): GeneratedItem => ({
    kind: "special",
    text: `${scheme}:${slashes}${withUser(user)}${h}${rest}`,
  }));

const nonSpecialUrl = fc
  .tuple(fc.constantFrom("sftp", "ssh", "s3", "smtp", "git+ssh", "SFTP", "x-custom.v1"), userinfo, host, tail)
  .map(([scheme, user, h, rest]): GeneratedItem => ({ kind: "non-special", text: `${scheme}://${withUser(user)}${h}${rest}` }));

const local = fc.constantFrom("ana", "a.b", "x+y", "ops", "A.Lopez");
const mailbox = fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`);

/** An address list as it may appear in a mailto, percent-encoded in places. */
const mailboxes = fc.tuple(fc.array(mailbox, { minLength: 1, maxLength: 2 }), fc.nat(9)).map(([list, encoding]) => {
  const text = list.join(",");
  if (encoding === 0) return text.replaceAll("@", "%40");
  if (encoding === 1) return text.replaceAll(",", "%2C");
  if (encoding === 2) return text.replace(".", "%2E");
  return text;
});

const mailtoField = fc.oneof(
  fc.tuple(fc.constantFrom("to", "cc", "bcc", "To", "CC", "Bcc", "%74o", "%43c"), mailboxes).map(([n, v]) => `${n}=${v}`),
  fc
    .tuple(fc.constantFrom("subject", "body", "reply-to"), fc.constantFrom("hi", "Hello%20there", "x@gmail.com"))
    .map(([n, v]) => `${n}=${v}`),
);

const mailto = fc
  .tuple(fc.constantFrom("mailto", "MAILTO", "MailTo"), fc.option(mailboxes, { nil: "" }), fc.array(mailtoField, { maxLength: 3 }))
  .map(([scheme, to, fields]): GeneratedItem => ({
    kind: "mailto",
    text: `${scheme}:${to}${fields.length > 0 ? `?${fields.join("&")}` : ""}`,
  }));

const addressItem = fc
  .tuple(mostly([""], ["a@", "gmail.com@"], 4), mailbox)
  .map(([extra, box]): GeneratedItem => ({ kind: "address", text: `${extra}${box}` }));

const bare = fc
  .tuple(mostly([""], ["//"]), userinfo, host, tail)
  .map(([lead, user, h, rest]): GeneratedItem => ({ kind: "bare", text: `${lead}${withUser(user)}${h}${rest}` }));

const odd = fc
  .constantFrom("sftp:pastebin.com", "urn:isbn:0451450523", "javascript:alert(1)", "https://", "mailto:", "user:pw@hooks.example.com")
  .map((text): GeneratedItem => ({ kind: "odd", text }));

export const destinationItem: fc.Arbitrary<GeneratedItem> = fc.oneof(
  { arbitrary: specialUrl, weight: 12 },
  { arbitrary: nonSpecialUrl, weight: 6 },
  { arbitrary: mailto, weight: 6 },
  { arbitrary: addressItem, weight: 6 },
  { arbitrary: bare, weight: 6 },
  { arbitrary: odd, weight: 1 },
);

/** One to three items joined by ",", ";" or spaces, sometimes padded, sometimes with a tab or newline inside. */
export const destinationArbitrary: fc.Arbitrary<GeneratedDestination> = fc
  .tuple(
    fc.oneof(
      { arbitrary: fc.array(destinationItem, { minLength: 1, maxLength: 1 }), weight: 3 },
      fc.array(destinationItem, { minLength: 2, maxLength: 3 }),
    ),
    fc.constantFrom(",", ", ", ";", " ", " ; "),
    mostly([""], [" ", "  "]),
    mostly([""], [" "]),
    mostly([""], ["\t", "\n", "\r\n"], 12),
    fc.nat(),
  )
  .map(([items, separator, lead, trail, control, at]) => {
    let destination = `${lead}${items.map((i) => i.text).join(separator)}${trail}`;
    if (control !== "") {
      const i = at % (destination.length + 1);
      destination = `${destination.slice(0, i)}${control}${destination.slice(i)}`;
    }
    return { items, destination };
  });

/** What the oracle read: the hosts, and whether some parser could not read the value at all. */
export interface OracleReading {
  readonly hosts: ReadonlySet<string>;
  readonly unreadable: boolean;
}

/** RFC 3986 Appendix B. */
const RFC3986 = /^(?:([^:/?#]+):)?(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/s;

/** The host of an RFC 3986 "//" authority (percent escapes decoded, as §3.2.2 says they stand for), or undefined without one. */
function rfc3986Host(text: string): string | undefined {
  const authority = RFC3986.exec(text)?.[2];
  if (authority === undefined) return undefined;
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  let h: string;
  if (hostPort.startsWith("[")) {
    const end = hostPort.indexOf("]");
    h = end < 0 ? hostPort : hostPort.slice(0, end + 1);
  } else {
    const colon = hostPort.indexOf(":");
    h = colon < 0 ? hostPort : hostPort.slice(0, colon);
  }
  try {
    return decodeURIComponent(h);
  } catch {
    return h;
  }
}

/** Node's WHATWG host, or undefined when the URL parser refuses the value. */
function whatwgHost(text: string): string | undefined {
  try {
    return new URL(text).hostname;
  } catch {
    return undefined;
  }
}

/** Lower-cased, trailing dots removed, IPv6 literals in the form Node's URL serializes. */
export function normalizeHost(h: string): string {
  const name = h.toLowerCase().replace(/\.+$/, "");
  if (!name.startsWith("[")) return name;
  return whatwgHost(`http://${name}/`) ?? name;
}

/** RFC 6068: the addresses of the path and of the to, cc and bcc fields, decoded. */
function mailtoAddresses(text: string): { addresses: string[]; unreadable: boolean } {
  const body = text.slice(text.indexOf(":") + 1);
  const q = body.indexOf("?");
  const lists = [q < 0 ? body : body.slice(0, q)];
  for (const field of q < 0 ? [] : body.slice(q + 1).split("&")) {
    const [name = "", ...value] = field.split("=");
    try {
      if (["to", "cc", "bcc"].includes(decodeURIComponent(name).toLowerCase())) lists.push(value.join("="));
    } catch {
      return { addresses: [], unreadable: true };
    }
  }
  const addresses: string[] = [];
  for (const list of lists) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(list);
    } catch {
      return { addresses: [], unreadable: true };
    }
    addresses.push(
      ...decoded
        .split(/[,;]/)
        .map((a) => a.trim())
        .filter((a) => a !== ""),
    );
  }
  return { addresses, unreadable: addresses.length === 0 };
}

/** The hosts parsers read in one generated item. */
export function oracleItem(item: GeneratedItem): OracleReading {
  const hosts = new Set<string>();
  let unreadable = false;
  const add = (h: string | undefined): void => {
    if (h !== undefined) hosts.add(normalizeHost(h));
  };
  switch (item.kind) {
    case "special": {
      // A browser, fetch or Node; and an RFC 3986 client (curl, urllib3) where there is a "//" authority.
      const h = whatwgHost(item.text);
      if (h === undefined) unreadable = true;
      add(h);
      add(rfc3986Host(item.text));
      break;
    }
    case "non-special": {
      const h = whatwgHost(item.text);
      if (h === undefined) unreadable = true;
      add(h);
      add(rfc3986Host(item.text));
      break;
    }
    case "mailto": {
      const { addresses, unreadable: bad } = mailtoAddresses(item.text);
      unreadable = bad;
      for (const a of addresses) {
        if (!a.includes("@")) unreadable = true;
        else add(a.slice(a.lastIndexOf("@") + 1));
      }
      break;
    }
    case "address": {
      // RFC 5322: the domain follows the last "@".
      add(item.text.slice(item.text.lastIndexOf("@") + 1));
      break;
    }
    case "bare": {
      // What a tool that puts "http://" in front sees, and the RFC 3986 network-path reading.
      const withoutSlashes = item.text.replace(/^[/\\]+/, "");
      const h = whatwgHost(`http://${withoutSlashes}`);
      if (h === undefined) unreadable = true;
      add(h);
      add(rfc3986Host(`//${item.text.replace(/^\/+/, "")}`));
      break;
    }
    case "odd":
      // No host any parser agrees on ("sftp:host" has none for RFC 3986 and WHATWG, one for a lenient client).
      unreadable = true;
      break;
  }
  return { hosts, unreadable };
}

/** The hosts of a whole generated destination: every item's, and unreadable when any item is or a control character is present. */
export function oracle(d: GeneratedDestination): OracleReading {
  const hosts = new Set<string>();
  let unreadable = /[\t\r\n]/.test(d.destination);
  for (const item of d.items) {
    const reading = oracleItem(item);
    for (const h of reading.hosts) hosts.add(h);
    unreadable ||= reading.unreadable;
  }
  return { hosts, unreadable };
}

/** A host equal to an entry or a subdomain of one. */
export function within(h: string, entries: readonly string[]): boolean {
  return entries.some((e) => h === e || h.endsWith(`.${e}`));
}
