// ESLint flat config: typescript-eslint's recommended, type-aware rules for lib/; plain JS rules for the rest.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'examples/build/', 'test/types/build/', 'bench/out/', 'docs/api/', 'prebuilds/'] },
  js.configs.recommended,
  {
    files: ['lib/**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'error',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js', '**/*.cjs'],
    languageOptions: {
      globals: {
        process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', queueMicrotask: 'readonly',
        require: 'readonly', module: 'readonly', __dirname: 'readonly', URL: 'readonly', TextEncoder: 'readonly',
        TextDecoder: 'readonly', SharedArrayBuffer: 'readonly', Atomics: 'readonly', globalThis: 'readonly',
        AbortController: 'readonly', AbortSignal: 'readonly',
      },
    },
  },
);
