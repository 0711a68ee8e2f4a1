import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vitest/config";

// The server serves dist/ under a Content-Security-Policy without 'unsafe-inline': every script
// and style must be a file. Svelte's component CSS is extracted (css: "external" is its default
// with Vite), Vite's module-preload polyfill lives in the entry chunk, and no asset is inlined as
// a data: URL into scripts (images would be fine under img-src data:, but there are none).
export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
