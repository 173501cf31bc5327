// Monaco, loaded on first use (it is the biggest part of the panel: only the pages that edit
// load it), with its workers bundled (no CDN: `new Worker` from our own assets) and monaco-yaml
// validating YAML against the API's own schemas (`GET /openapi/v3`).
//
// `loadMonaco()` gives the module; `schemaUri(kind)` names the schema a model of that kind is
// checked against: give a YAML model the URI `schemaModelUri(kind, id)` and monaco-yaml matches
// it by file name.

import type * as Monaco from 'monaco-editor';

import { api } from '../api/client';
import { isDark } from '../components/theme';

export type MonacoModule = typeof Monaco;

let loading: Promise<MonacoModule> | null = null;

interface OpenApi {
  components?: { schemas?: Record<string, unknown> };
}

/** The JSON Schema of `kind` (`GameServer`) as one document: the kind's schema with every
 * component beside it, so `#/components/schemas/X` references resolve inside it. */
export function schemaOf(doc: OpenApi, kind: string): Record<string, unknown> | undefined {
  const all = doc.components?.schemas;
  if (!all || !all[kind]) return undefined;
  return { $ref: `#/components/schemas/${kind}`, components: { schemas: all } };
}

export function schemaModelUri(kind: string, id: string): string {
  return `inmemory://catalyst/${encodeURIComponent(id)}.${kind.toLowerCase()}.yaml`;
}

async function load(): Promise<MonacoModule> {
  const [monaco, { configureMonacoYaml }, EditorWorker, YamlWorker] = await Promise.all([
    import('monaco-editor'),
    import('monaco-yaml'),
    import('monaco-editor/editor/editor.worker?worker').then((m) => m.default),
    import('./yaml.worker?worker').then((m) => m.default),
  ]);
  (self as unknown as { MonacoEnvironment: unknown }).MonacoEnvironment = {
    getWorker(_: string, label: string): Worker | Promise<Worker> {
      // the language services of JSON, CSS and HTML (server files such as ops.json or
      // index.html) run in their own workers, loaded when first used; TypeScript's (~6 MB) is
      // not bundled: the file manager opens .js/.ts files as plain text
      switch (label) {
        case 'yaml':
          return new YamlWorker();
        case 'json':
          return import('monaco-editor/language/json/json.worker?worker').then((m) => new m.default());
        case 'css':
        case 'scss':
        case 'less':
          return import('monaco-editor/language/css/css.worker?worker').then((m) => new m.default());
        case 'html':
        case 'handlebars':
        case 'razor':
          return import('monaco-editor/language/html/html.worker?worker').then((m) => new m.default());
        default:
          return new EditorWorker();
      }
    },
  };
  let schemas: { fileMatch: string[]; uri: string; schema: object }[] = [];
  try {
    const doc = await api<OpenApi>('/openapi/v3');
    schemas = Object.keys(doc.components?.schemas ?? {})
      .filter((k) => /^[A-Z]/.test(k))
      .map((kind) => ({
        fileMatch: [`*.${kind.toLowerCase()}.yaml`],
        uri: `inmemory://catalyst/schemas/${kind}.json`,
        schema: schemaOf(doc, kind) as object,
      }))
      .filter((s) => s.schema);
  } catch {
    // without the schemas the editor still edits; the API checks on apply
  }
  configureMonacoYaml(monaco, {
    enableSchemaRequest: false,
    validate: true,
    completion: true,
    hover: true,
    isKubernetes: true,
    schemas,
  });
  monaco.editor.setTheme(isDark() ? 'vs-dark' : 'vs');
  return monaco;
}

/** The Monaco module, configured once. */
export function loadMonaco(): Promise<MonacoModule> {
  loading ??= load().catch((e) => {
    loading = null;
    throw e;
  });
  return loading;
}
