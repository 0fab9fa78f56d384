// ESLint (flat config) with typescript-eslint. The rule that matters most:
// only lib/kernel/ touches the file system and names /proc and /sys.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

import kernelPaths from './eslint-rules/kernel-paths.mjs';
import noIssueReferences from './eslint-rules/no-issue-references.mjs';

const local = { rules: { 'kernel-paths': kernelPaths, 'no-issue-references': noIssueReferences } };

const FS_MODULES = ['fs', 'node:fs', 'fs/promises', 'node:fs/promises'].map((name) => ({
  name,
  message: 'Only lib/kernel/ touches the file system: add or use a reader there.',
}));

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-*/', 'prebuilds/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      eqeqeq: ['error', 'always'],
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Tests take kernel JSON and YAML documents apart; typing every shape is noise there.
    files: ['test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
    },
  },
  {
    files: ['**/*.{js,mjs,cjs,ts,mts,cts}'],
    plugins: { local },
    rules: { 'local/no-issue-references': 'error' },
  },
  {
    files: ['lib/**/*.ts'],
    ignores: ['lib/kernel/**'],
    plugins: { local },
    rules: {
      'no-restricted-imports': ['error', { paths: FS_MODULES }],
      'local/kernel-paths': 'error',
    },
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
