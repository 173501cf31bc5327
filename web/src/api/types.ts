// The shapes the panel reads. Only what the pages use is typed; objects keep every other field
// (the YAML editor shows and sends them whole).

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface ManagedField {
  manager: string;
  operation: string;
  time?: string;
  fieldsType?: string;
  fieldsV1?: Record<string, unknown>;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: ManagedField[];
  ownerReferences?: { kind: string; name: string; uid?: string }[];
  finalizers?: string[];
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface ObjectList<T extends KObject = KObject> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface PortSpec {
  name?: string;
  containerPort?: number;
  hostPort?: number;
  protocol?: string;
}

export interface GameServerSpec {
  template?: string;
  image?: string;
  nodeName?: string;
  owner?: string;
  variables?: Record<string, string>;
  ports?: PortSpec[];
  resources?: { cpu?: string | number; memory?: string; disk?: string };
  [k: string]: unknown;
}

export interface GameServerStatus {
  phase?: string;
  nodeName?: string;
  address?: string;
  ports?: PortSpec[];
  conditions?: Condition[];
  message?: string;
  reason?: string;
  [k: string]: unknown;
}

export interface GameServer extends KObject {
  spec?: GameServerSpec;
  status?: GameServerStatus;
}

export interface TemplateVariable {
  name: string;
  displayName?: string;
  description?: string;
  default?: string;
  userViewable?: boolean;
  userEditable?: boolean;
  rules?: string;
}

export interface Template extends KObject {
  spec?: { variables?: TemplateVariable[]; image?: string; description?: string; [k: string]: unknown };
}
