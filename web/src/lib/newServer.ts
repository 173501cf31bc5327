// The GameServer the create form sends: a Template's defaults copied where the rest of the system
// reads only the server's own spec (ports and resources: the scheduler places by them), and only
// the variables the user set to something other than their default.

import type { GameServer, PortSpec, Template } from '../api/types';

/** Why `s` is not an RFC 1123 DNS label (a GameServer's name), or null. */
export function dnsLabelError(s: string): string | null {
  if (!s) return 'is required';
  if (s.length > 63) return 'must be at most 63 characters';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s))
    return 'may only contain lowercase letters, digits and "-", starting and ending with a letter or digit';
  return null;
}

export interface TemplateImage {
  name?: string;
  image: string;
}

export interface TemplateDefaults {
  images: TemplateImage[];
  ports: PortSpec[];
  resources: { cpu?: string; memory?: string; disk?: string; pids?: number };
  description: string;
}

/** What a Template offers a new server. */
export function templateDefaults(t: Template | undefined): TemplateDefaults {
  const spec = (t?.spec ?? {}) as Record<string, unknown>;
  const images = Array.isArray(spec.images) ? (spec.images as TemplateImage[]).filter((i) => i && typeof i.image === 'string') : [];
  const ports = Array.isArray(spec.ports) ? (spec.ports as PortSpec[]) : [];
  const r = (spec.resources ?? {}) as Record<string, unknown>;
  const str = (x: unknown) => (x === undefined || x === null ? undefined : String(x));
  return {
    images,
    ports,
    resources: {
      cpu: str(r.cpu),
      memory: str(r.memory),
      disk: str(r.disk),
      pids: typeof r.pids === 'number' ? r.pids : undefined,
    },
    description: typeof spec.description === 'string' ? spec.description : '',
  };
}

export interface NewServerInput {
  namespace: string;
  name: string;
  template: string;
  /** the image chosen; empty or the Template's first: the Template's default (not pinned) */
  image: string;
  cpu: string;
  memory: string;
  disk: string;
  /** the server's ports; empty: none */
  ports: PortSpec[];
  /** every variable's value as the form shows it */
  variables: Record<string, string>;
  /** each variable's default (values equal to it are left to the Template) */
  defaults: Record<string, string>;
}

/** The GameServer object to POST. */
export function buildGameServer(input: NewServerInput, t: Template | undefined): GameServer {
  const d = templateDefaults(t);
  const spec: NonNullable<GameServer['spec']> = { template: input.template };
  if (input.image && input.image !== d.images[0]?.image) spec.image = input.image;
  const variables: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.variables)) if (v !== (input.defaults[k] ?? '')) variables[k] = v;
  if (Object.keys(variables).length) spec.variables = variables;
  // pids stay the Template's (the node fills them in); the scheduler places by cpu/memory/disk
  const resources: Record<string, string> = {};
  if (input.cpu.trim()) resources.cpu = input.cpu.trim();
  if (input.memory.trim()) resources.memory = input.memory.trim();
  if (input.disk.trim()) resources.disk = input.disk.trim();
  if (Object.keys(resources).length) spec.resources = resources as NonNullable<GameServer['spec']>['resources'];
  if (input.ports.length) spec.ports = input.ports;
  return {
    apiVersion: 'catalyst.dev/v1alpha1',
    kind: 'GameServer',
    metadata: { name: input.name, namespace: input.namespace },
    spec,
  };
}

/** The causes of a Status as `field → messages`. */
export function causeMap(causes: { field?: string; message?: string }[] | undefined): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const c of causes ?? []) {
    const k = c.field ?? '';
    m.set(k, [...(m.get(k) ?? []), c.message ?? '']);
  }
  return m;
}

/** The messages of causes naming `prefix` or a field under it (`spec.ports` → `spec.ports[0].hostPort`). */
export function causesUnder(m: Map<string, string[]>, prefix: string): string[] {
  const out: string[] = [];
  for (const [k, msgs] of m) {
    if (k === prefix) out.push(...msgs);
    else if (k.startsWith(`${prefix}.`) || k.startsWith(`${prefix}[`)) out.push(...msgs.map((x) => `${k.slice(prefix.length).replace(/^\./, '')}: ${x}`));
  }
  return out;
}
