/**
 * What OPA's bundle reader checks about a bundle's layout, checked the same
 * way here, so that a bundle an OPA server would refuse is refused by the
 * adapter too (and the two never serve different data from one bundle):
 *
 * - Data files: every `data.json` anywhere in the tree is loaded at the path
 *   of its directory (`veto/config/data.json` is `data.veto.config`); the root
 *   one must be an object; files are merged in tar order, and two files that
 *   set the same value (anything but two objects at one path) conflict.
 *   `data.yaml` / `data.yml`, which OPA also loads, are refused: this package
 *   has no YAML reader, and a data file must never be silently ignored.
 * - Roots (`.manifest` `roots`, default `[""]`, each trimmed of "/"): no two
 *   may overlap (one a path prefix of the other, by segments); every Rego
 *   module's package, every WASM entrypoint and all data must lie under one.
 * - WASM: every module the manifest names exists as a `policy.wasm` file; no
 *   entrypoint is served by two modules.
 * - One manifest: OPA reads every file whose name ends in `.manifest` as the
 *   manifest. Delta bundles (`patch.json`) are refused.
 *
 * Each rule, and the messages' wording, follows OPA's bundle package
 * (`validateAndInjectDefaults`, `insertValue`, `merge.InterfaceMaps`); the
 * differential test (test/policy/bundle-layout.test.ts) checks generated bundles
 * against the real `opa`.
 */
import { posix } from "node:path";
import type { BundleFile } from "./bundle-hash.js";
import { BundleLoadError, toError } from "../common/errors.js";
import { MAX_DATA_DEPTH, nestsDeeperThan } from "./data.js";

export interface ManifestLayout {
  readonly roots?: readonly string[] | undefined;
  readonly wasm?: readonly { readonly entrypoint: string; readonly module: string }[] | undefined;
}

const WASM_FILE = "policy.wasm";

type JsonObject = Record<string, unknown>;
const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === "object" && !Array.isArray(v);

/** OPA's rootContains: a root of one empty segment contains every path. */
function rootContains(root: readonly string[], other: readonly string[]): boolean {
  if (root.length === 1 && root[0] === "") return true;
  if (root.length > other.length) return false;
  return root.every((segment, i) => segment === other[i]);
}

/** OPA's RootPathsContain. */
function rootPathsContain(roots: readonly string[], path: string): boolean {
  const segments = path.split("/");
  return roots.some((root) => rootContains(root.split("/"), segments));
}

function rootPathsOverlap(a: string, b: string): boolean {
  return rootContains(a.split("/"), b.split("/")) || rootContains(b.split("/"), a.split("/"));
}

/** OPA's `strings.Trim(s, "/")`. */
const trimSlashes = (s: string): string => s.replace(/^\/+|\/+$/g, "");

/** The data path of a data file: its directory, cleaned, leading "/" and "." characters dropped (OPA's getNormalizedPath). */
function dataKey(name: string): string[] {
  const dir = posix.normalize(posix.dirname(name)).replace(/^[/.]+/, "");
  return dir === "" ? [] : dir.split("/");
}

/** Set `key` as an own property, whatever it is ("__proto__" included). */
function put(target: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** OPA's merge.InterfaceMaps conflict rule: a key in both that is not an object in both. */
function conflicts(a: JsonObject, b: JsonObject): boolean {
  for (const key of Object.keys(b)) {
    if (!Object.hasOwn(a, key)) continue;
    const av = a[key];
    const bv = b[key];
    if (!isObject(av) || !isObject(bv) || conflicts(av, bv)) return true;
  }
  return false;
}

function mergeInto(target: JsonObject, source: JsonObject): void {
  for (const key of Object.keys(source)) {
    const existing = target[key];
    const value = source[key];
    if (Object.hasOwn(target, key) && isObject(existing) && isObject(value)) mergeInto(existing, value);
    else put(target, key, value);
  }
}

/** The package path of a Rego module ("veto/crm"), or undefined when it cannot be read here. */
export function regoPackagePath(source: string): string | undefined {
  // The package is the module's first statement; comments and blank lines may come before it.
  const text = source.replace(/^\uFEFF/, "");
  const match = /^(?:\s*(?:#[^\n]*)?\n)*\s*package[ \t]+/.exec(text);
  if (match === null) return undefined;
  let rest = text.slice(match[0].length);
  const segments: string[] = [];
  const head = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
  if (head === null) return undefined;
  segments.push(head[0]);
  rest = rest.slice(head[0].length);
  for (;;) {
    const dotted = /^\.([A-Za-z_][A-Za-z0-9_]*)/.exec(rest);
    const bracketed = /^\[\s*("(?:[^"\\\n]|\\.)*")\s*\]/.exec(rest);
    if (dotted !== null) {
      segments.push(dotted[1] ?? "");
      rest = rest.slice(dotted[0].length);
    } else if (bracketed !== null) {
      try {
        segments.push(JSON.parse(bracketed[1] ?? "") as string);
      } catch {
        return undefined;
      }
      rest = rest.slice(bracketed[0].length);
    } else {
      break;
    }
  }
  // What follows the package ref must end the statement.
  if (!/^[ \t]*(?:#[^\n]*)?(?:\r?\n|;|$)/.test(rest)) return undefined;
  return segments.join("/");
}

/**
 * Check the bundle's layout as OPA would and return its data document (every
 * data file merged at its path; `{}` when it has none). Throws
 * BundleLoadError (bundle_unusable) naming the file or rule at fault.
 */
export function readBundleLayout(files: readonly BundleFile[], manifest: ManifestLayout, label: string): JsonObject {
  const unusable = (message: string, cause?: unknown): BundleLoadError =>
    new BundleLoadError("bundle_unusable", `bundle ${label} ${message}`, cause === undefined ? undefined : { cause });

  for (const { name } of files) {
    if (name !== ".manifest" && name.endsWith(".manifest")) {
      throw unusable(`holds a second manifest, ${name} (OPA reads every file named *.manifest as the manifest, and refuses more than one)`);
    }
    if (posix.basename(name) === "patch.json") throw unusable(`holds ${name}: delta bundles are not supported`);
  }

  // Data, as OPA's reader inserts it: file by file, in tar order.
  const data: JsonObject = {};
  for (const { name, content } of files) {
    const base = posix.basename(name);
    if (base === "data.yaml" || base === "data.yml") {
      throw unusable(`holds ${name}, a YAML data file OPA would load at data.${dataKey(name).join(".")}: YAML is not supported here, ship it as data.json`);
    }
    if (base !== "data.json") continue;
    const key = dataKey(name);
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(content));
    } catch (error) {
      throw unusable(`data file ${name} is not valid JSON: ${toError(error).message}`, error);
    }
    if (nestsDeeperThan(value, MAX_DATA_DEPTH - key.length)) {
      throw unusable(`data file ${name} nests objects and arrays deeper than ${MAX_DATA_DEPTH} levels of the data document (the limit)`);
    }
    if (key.length === 0 && !isObject(value)) throw unusable(`data file ${name} is not a JSON object (the root data file must be one)`);
    // mktree: the value under its path.
    let tree: unknown = value;
    for (const segment of [...key].reverse()) {
      const parent: JsonObject = {};
      put(parent, segment, tree);
      tree = parent;
    }
    if (conflicts(data, tree as JsonObject)) {
      throw unusable(`data file ${name} sets values another data file already set under data.${key.join(".")} (OPA: failed to insert data file)`);
    }
    mergeInto(data, tree as JsonObject);
  }

  const roots = (manifest.roots ?? [""]).map(trimSlashes);
  const rootList = `[${roots.join(" ")}]`;
  for (let i = 0; i < roots.length - 1; i++) {
    for (let j = i + 1; j < roots.length; j++) {
      if (rootPathsOverlap(roots[i] ?? "", roots[j] ?? "")) {
        throw unusable(`.manifest has overlapped roots: '${roots[i]}' and '${roots[j]}'`);
      }
    }
  }

  for (const { name, content } of files) {
    if (!name.endsWith(".rego")) continue;
    const path = regoPackagePath(content.toString("utf8"));
    if (path === undefined) throw unusable(`module ${name}: its package declaration cannot be read here`);
    if (!rootPathsContain(roots, path)) {
      throw unusable(`.manifest roots ${rootList} do not permit 'package ${path.replaceAll("/", ".")}' in module '${name}'`);
    }
  }

  const wasmFiles = new Set(files.filter((f) => posix.basename(f.name) === WASM_FILE).map((f) => f.name));
  const entrypoints = new Set<string>();
  for (const { entrypoint, module } of manifest.wasm ?? []) {
    if (!wasmFiles.has(module.replace(/^(?:\.\/|\/)+/, ""))) {
      throw unusable(`.manifest references wasm module '${module}' but the module file does not exist`);
    }
    if (!rootPathsContain(roots, entrypoint)) {
      throw unusable(`.manifest roots ${rootList} do not permit '${entrypoint}' entrypoint for wasm module '${module}'`);
    }
    if (entrypoints.has(entrypoint)) throw unusable(`.manifest: entrypoint '${entrypoint}' cannot be used by more than one wasm module`);
    entrypoints.add(entrypoint);
  }

  // OPA's dfs over the data, with its test for going deeper as OPA writes it:
  // a path's segments, each taken as a root, against every root.
  const walk = (value: unknown, path: string): void => {
    const trimmed = trimSlashes(path);
    if (rootPathsContain(roots, trimmed)) return;
    if (isObject(value) && roots.some((root) => rootPathsContain(trimmed.split("/"), root))) {
      for (const key of Object.keys(value)) walk(value[key], `${path}/${key}`);
      return;
    }
    throw unusable(`.manifest roots ${rootList} do not permit data at path '/${trimmed}'`);
  };
  walk(data, "");
  // OPA then writes to its store only what lies at each root (the value at
  // the root's path, under its parents): what the walk let through elsewhere
  // (empty objects on the way to a root) is not in OPA's data, so not in ours.
  if (roots.includes("")) return data;
  const kept: JsonObject = {};
  for (const root of roots) {
    const segments = root.split("/");
    let node: unknown = data;
    for (const segment of segments) node = isObject(node) && Object.hasOwn(node, segment) ? node[segment] : undefined;
    if (node === undefined) continue;
    let target = kept;
    for (const segment of segments.slice(0, -1)) {
      if (!Object.hasOwn(target, segment)) put(target, segment, {});
      target = target[segment] as JsonObject;
    }
    put(target, segments.at(-1)!, node);
  }
  return kept;
}
