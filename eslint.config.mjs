// ESLint with typescript-eslint, and dprint as an ESLint rule (@effect/eslint-plugin), the way
// effect's own repositories lint and format. `npm run lint` checks (part of `npm test`);
// `npm run format` rewrites the files (dprint's formatting and every other fixable rule).
import * as effectEslint from "@effect/eslint-plugin"
import eslint from "@eslint/js"
import tseslint from "typescript-eslint"

/** Node's globals, for the plain `.mjs` programs (test-package/). */
const node = { console: "readonly", process: "readonly", URL: "readonly", setTimeout: "readonly" }

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "docs/api/**", "tmp/**", "coverage/**"] },
  eslint.configs.recommended,
  tseslint.configs.recommended,
  effectEslint.configs.dprint,
  {
    languageOptions: { globals: node },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        destructuredArrayIgnorePattern: "^_",
        caughtErrorsIgnorePattern: "^_"
      }],
      // An interface that names a service shape or merges with a class is not an empty object type.
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "always" }],
      // `declare namespace X { type ... }` holds the types of X's fields under X's name, as effect's
      // own modules do (`PgDriver.Config.SessionReset`); it emits no code.
      "@typescript-eslint/no-namespace": ["error", { allowDeclarations: true }]
    }
  },
  {
    // The machinery's generic constraints (`Strategy<any, any>`, validator rules over any option
    // type); none of it is exported from an entry point.
    files: ["src/internal/**"],
    rules: { "@typescript-eslint/no-explicit-any": "off" }
  },
  {
    // Tests, benchmarks and tools feed the library bad input on purpose (`as any`); the library
    // itself keeps `any` out (its public types are checked by test/typing.test.ts and tsc).
    files: [
      "test/**",
      "bench/**",
      "scripts/**",
      "workbench/**",
      "support/**",
      "examples/**",
      "test-package/**",
      "*.config.ts"
    ],
    rules: { "@typescript-eslint/no-explicit-any": "off" }
  }
)
