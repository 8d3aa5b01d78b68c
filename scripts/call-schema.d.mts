// Types of scripts/call-schema.mjs for the TypeScript tests that import it.
export declare const CALL_SCHEMA_FILE: string;
export declare function callJsonSchemaText(z: unknown, callSchema: unknown): string;
export declare const CONTRACT_FILE: string;
export declare function callFieldsTable(z: unknown, callSchema: unknown): string;
export declare function contractWithTable(text: string, table: string): string;
