import base from './eslint.config.js';
import tseslint from 'typescript-eslint';
export default [...base, { files: ['test/**/*.ts', 'bench/**/*.ts'], languageOptions: { parser: tseslint.parser }, plugins: { '@typescript-eslint': tseslint.plugin }, rules: { '@typescript-eslint/no-explicit-any': 'error' } }];
