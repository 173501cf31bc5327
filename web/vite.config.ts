import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

// `npm run dev` serves the panel with hot reload and sends the API to a running
// `catalyst server` (CATALYST_URL, default https://127.0.0.1:7443; its certificate is the
// cluster's own CA, hence secure: false).
const api = process.env.CATALYST_URL ?? 'https://127.0.0.1:7443';
const proxy = Object.fromEntries(
  ['/apis', '/auth', '/openapi', '/metrics', '/version', '/convert'].map((p) => [
    p,
    { target: api, secure: false, ws: true, changeOrigin: true },
  ]),
);

export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: [
      // monaco-yaml's worker imports monaco-editor by its file path, which monaco-editor 0.57's
      // package exports no longer allow
      {
        find: /^monaco-editor\/esm\/vs\/(.*)$/,
        replacement: fileURLToPath(new URL('./node_modules/monaco-editor/esm/vs/$1', import.meta.url)),
      },
    ],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Monaco is big by nature and loads only on the pages that edit
    chunkSizeWarningLimit: 4096,
  },
  worker: { format: 'es' },
  server: { proxy },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
