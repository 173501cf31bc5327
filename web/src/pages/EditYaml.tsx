// View, edit or create any object as YAML. The kind comes from discovery (plural → kind,
// namespaced); an existing object is read live; a new one starts from a skeleton and, once
// applied, the page moves to its edit URL.
//
// Routes: /yaml/:plural/new and /yaml/:plural/:name (cluster kinds, or a new namespaced object
// whose namespace the YAML names), /yaml/:plural/:ns/new and /yaml/:plural/:ns/:name.

import type { ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link, useLocation } from 'wouter';

import { api, GROUP } from '../api/client';
import { useLiveList } from '../api/hooks';
import type { KObject } from '../api/types';
import { FieldOwners } from '../components/FieldOwners';
import { YamlEditor } from '../components/YamlEditor';

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
  verbs?: string[];
}

/** The kinds of the API group by plural (`GET /apis/catalyst.dev/v1alpha1`; subresources left out). */
export function useKinds() {
  return useQuery({
    queryKey: ['discovery', GROUP],
    queryFn: async () => {
      const r = await api<{ resources: ApiResource[] }>(GROUP);
      return new Map(r.resources.filter((x) => !x.name.includes('/')).map((x) => [x.name, x]));
    },
    staleTime: Infinity,
  });
}

/** The edit URL of an object. */
export function yamlHref(plural: string, namespace: string | undefined, name: string): string {
  const e = encodeURIComponent;
  return namespace ? `/yaml/${e(plural)}/${e(namespace)}/${e(name)}` : `/yaml/${e(plural)}/${e(name)}`;
}

export default function EditYaml({ plural, namespace, name }: { plural: string; namespace?: string; name?: string }) {
  const kinds = useKinds();
  const [, navigate] = useLocation();
  const res = kinds.data?.get(plural);
  const ns = res?.namespaced ? namespace : undefined;
  const list = useLiveList<KObject>(plural, ns, { fieldSelector: `metadata.name=${name ?? ''}` }, !!res && name !== undefined);
  const live = name !== undefined ? list.byKey.get(ns ? `${ns}/${name}` : name) : undefined;
  const where = name === undefined ? '' : `${ns ? `${ns}/` : ''}${name}`;
  const title = res ? (name === undefined ? `New ${res.kind}` : `${res.kind} ${where}`) : name === undefined ? 'New object' : where;

  let body: ReactNode;
  if (kinds.error) body = <p className="alert" role="alert">{(kinds.error as Error).message}</p>;
  else if (kinds.isLoading) body = <p className="muted">Loading…</p>;
  else if (!res) body = <p className="alert" role="alert">The API has no kind called “{plural}”.</p>;
  else if (res.namespaced && name !== undefined && !namespace)
    body = (
      <p className="alert" role="alert">
        {res.kind} objects live in a namespace: open {`/yaml/${plural}/NAMESPACE/${name}`}.
      </p>
    );
  else if (name === undefined)
    body = (
      <YamlEditor
        key={`new/${plural}/${ns ?? ''}`}
        kind={res.kind}
        plural={plural}
        namespace={res.namespaced ? (namespace ?? 'default') : undefined}
        namespaced={res.namespaced}
        onApplied={(obj) => navigate(yamlHref(plural, obj.metadata.namespace, obj.metadata.name))}
      />
    );
  else if (list.error) body = <p className="alert" role="alert">{(list.error as Error).message}</p>;
  else if (list.isLoading) body = <p className="muted">Loading…</p>;
  else if (!live)
    body = (
      <p className="alert" role="alert">
        {res.kind} {where} does not exist (or was deleted).
      </p>
    );
  else
    body = (
      <>
        <YamlEditor
          key={`${plural}/${where}`}
          kind={res.kind}
          plural={plural}
          namespace={ns}
          name={name}
          live={live}
          namespaced={res.namespaced}
        />
        <FieldOwners obj={live} />
      </>
    );

  return (
    <section aria-labelledby="edit-yaml-title" className="yaml-page">
      <div className="toolbar" style={{ marginBottom: 0 }}>
        <h1 id="edit-yaml-title" style={{ margin: 0 }}>
          {title}
        </h1>
        <span className="spacer" />
        {res && name !== undefined && (
          <Link href={ns ? `/yaml/${plural}/${ns}/new` : `/yaml/${plural}/new`} className="button">
            New {res.kind}
          </Link>
        )}
      </div>
      {body}
    </section>
  );
}
