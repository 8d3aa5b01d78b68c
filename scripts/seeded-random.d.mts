// Types of scripts/seeded-random.mjs for the TypeScript tests that import it.
export declare function seededRandom(seed: number): () => number;
