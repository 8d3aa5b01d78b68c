// Types of scripts/call-schema.mjs for the TypeScript tests that import it.
export declare const CALL_SCHEMA_FILE: string;
export declare function callJsonSchemaText(z: unknown, callSchema: unknown): string;
