// A small, real system of record for the demo: accounts, contacts and
// opportunities for three tenants, persisted as one JSON file. Every write is
// durable before it returns (write to a temporary file, fsync, rename, fsync
// the directory), so the state the demo prints is the state on disk. Each
// record has a version (1 until its first write; every write bumps it): the
// state an approval is bound to (createVeto's recordState, docs/contract.md §6).
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";

const SEED = {
  acme: {
    account: {
      acc_1: { name: "Acme Corp", website: "https://acme.example", credit_limit: 50000, billing_email: "ap@acme.example" },
    },
    contact: {
      c_ana: { name: "Ana Lopez", company: "Acme Corp", email: "ana@acme.example", phone: "+1 555 0101" },
      c_raj: { name: "Raj Patel", company: "Acme Corp", email: "raj@acme.example", phone: "+1 555 0102" },
    },
    opportunity: {
      opp_1: { name: "Acme renewal", stage: "negotiation", amount: 3200, close_date: "2026-11-30" },
      opp_2: { name: "Acme expansion", stage: "proposal", amount: 48000, close_date: "2026-12-15" },
      opp_3: { name: "Acme services", stage: "qualification", amount: 12000, close_date: "2027-01-31" },
    },
  },
  globex: {
    account: { acc_9: { name: "Globex", website: "https://globex.example", credit_limit: 200000, billing_email: "ap@globex.example" } },
    contact: { c_hank: { name: "Hank Scorpio", company: "Globex", email: "hank@globex.example", phone: "+1 555 0199" } },
    opportunity: { opp_9: { name: "Globex pilot", stage: "proposal", amount: 9000, close_date: "2026-12-01" } },
  },
  initech: {
    account: { acc_5: { name: "Initech", website: "https://initech.example", credit_limit: 10000, billing_email: "ap@initech.example" } },
    contact: {},
    opportunity: {},
  },
};

export class LocalCrm {
  #path;
  #state;

  /** Opens the CRM at `path`, creating it from the seed data when absent or when `reset` is set. */
  constructor(path, { reset = false } = {}) {
    this.#path = path;
    if (reset || !existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      this.#state = { tenants: structuredClone(SEED), exports: [], writes: 0, versions: {} };
      this.#persist();
    } else {
      this.#state = JSON.parse(readFileSync(path, "utf8"));
    }
  }

  get path() {
    return this.#path;
  }

  /** A deep copy of the whole state, for printing and comparing. */
  snapshot() {
    return structuredClone(this.#state);
  }

  /** The record's version as text ("v1", "v2", ...), or undefined when the call names no single record. */
  version({ tenantId, object, recordId }) {
    if (typeof recordId !== "string" || this.#state.tenants[tenantId]?.[object]?.[recordId] === undefined) return undefined;
    return `v${this.#state.versions[`${tenantId}/${object}/${recordId}`] ?? 1}`;
  }

  read({ tenantId, object, recordId, fields }) {
    const record = this.#record(tenantId, object, recordId);
    const picked = fields?.length ? Object.fromEntries(fields.map((f) => [f, record[f]])) : { ...record };
    return { recordId, ...picked };
  }

  search({ tenantId, object, query = "" }) {
    const table = this.#table(tenantId, object);
    const q = String(query).toLowerCase();
    return Object.entries(table)
      .filter(([, r]) => JSON.stringify(r).toLowerCase().includes(q))
      .map(([id, r]) => ({ recordId: id, name: r.name }));
  }

  update({ tenantId, object, recordId, changes }) {
    const record = this.#record(tenantId, object, recordId);
    Object.assign(record, changes);
    const key = `${tenantId}/${object}/${recordId}`;
    this.#state.versions[key] = (this.#state.versions[key] ?? 1) + 1;
    this.#state.writes += 1;
    this.#persist();
    return { recordId, ...record };
  }

  create({ tenantId, object, recordId, changes }) {
    const table = this.#table(tenantId, object);
    const id = recordId ?? `${object.slice(0, 3)}_${Object.keys(table).length + 1}`;
    if (table[id]) throw new Error(`crm: ${object} ${id} already exists in tenant ${tenantId}`);
    table[id] = { ...changes };
    this.#state.writes += 1;
    this.#persist();
    return { recordId: id, ...table[id] };
  }

  delete({ tenantId, object, recordId }) {
    this.#record(tenantId, object, recordId);
    delete this.#table(tenantId, object)[recordId];
    this.#state.writes += 1;
    this.#persist();
    return { recordId, deleted: true };
  }

  export({ tenantId, object, fields, destination }) {
    const rows = Object.entries(this.#table(tenantId, object)).map(([id, r]) => ({
      recordId: id,
      ...Object.fromEntries((fields ?? []).map((f) => [f, r[f]])),
    }));
    this.#state.exports.push({ tenantId, object, destination, rows: rows.length });
    this.#state.writes += 1;
    this.#persist();
    return { exported: rows.length, destination };
  }

  #table(tenantId, object) {
    const table = this.#state.tenants[tenantId]?.[object];
    if (!table) throw new Error(`crm: no ${object} table for tenant ${tenantId}`);
    return table;
  }

  #record(tenantId, object, recordId) {
    const record = this.#table(tenantId, object)[recordId];
    if (!record) throw new Error(`crm: no ${object} ${recordId} in tenant ${tenantId}`);
    return record;
  }

  #persist() {
    const tmp = `${this.#path}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, `${JSON.stringify(this.#state, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#path);
    const dir = openSync(dirname(this.#path), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}

export const crmPathIn = (dir) => join(dir, "crm.json");
