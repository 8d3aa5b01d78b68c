// Types of scripts/conformance-vectors.mjs for the TypeScript tests that import it.
export declare const VECTORS_FILE: string;
export declare const TEST_BUNDLE: string;
export declare function computeVectors(adapter: unknown, bundlePath?: string): Promise<unknown>;
export declare function vectorsText(vectors: unknown): string;
