import { defineConfig } from 'vitest/config';

// Built into dist/ and served by Django (whitenoise) under /static/viewer/ — same origin as the page, so the
// dicom-image-loader and compute web workers load. Entry names are fixed (templates load viewer.js/viewer.css).
export default defineConfig({
  base: '/static/viewer/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 10000,
    rollupOptions: {
      input: 'src/main.ts',
      output: {
        entryFileNames: 'viewer.js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: (info) => ((info.names ?? []).some((n: string) => n.endsWith('.css')) ? 'viewer.css' : 'assets/[name]-[hash][extname]'),
      },
    },
  },
  worker: { format: 'es' },
  optimizeDeps: {
    exclude: ['@cornerstonejs/dicom-image-loader'],
    include: ['dicom-parser'],
  },
  test: { include: ['tests/**/*.test.ts'], environment: 'node' },
});
