// Svelte compiler options for vite-plugin-svelte and svelte-check. TypeScript in <script lang="ts">
// needs no preprocessor in Svelte 5 (types are stripped by the compiler).
export default {
  compilerOptions: {
    runes: true,
  },
};
