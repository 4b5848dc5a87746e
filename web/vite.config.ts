// vite.config.ts — builds the dashboard into web/dist for embedding
// (scripts/web-build.sh). Assets get content-hashed names under /assets/,
// which the server marks immutable. No sourcemaps: they would double the
// binary's size for a page that is readable TypeScript in the repository.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2020",
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev`: the API of a local `make run` on :8080.
    proxy: { "/v1": "http://127.0.0.1:8080", "/v2": "http://127.0.0.1:8080", "/metrics": "http://127.0.0.1:8080",
             "/readyz": "http://127.0.0.1:8080", "/livez": "http://127.0.0.1:8080" },
  },
});
