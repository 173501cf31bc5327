// A GameServer's YAML tab: the editor (schema, review, apply as `panel`, conflicts) and who owns
// which fields (metadata.managedFields), both following the live object.

import type { GameServer } from '../../api/types';
import { YamlEditor } from '../../components/YamlEditor';
import { FieldOwners } from '../../components/FieldOwners';

export default function Yaml({ gs }: { gs: GameServer }) {
  const { namespace, name } = gs.metadata;
  return (
    <div className="yaml-page">
      <YamlEditor
        key={`${namespace}/${name}`}
        kind="GameServer"
        plural="gameservers"
        namespace={namespace}
        name={name}
        live={gs}
        namespaced
      />
      <FieldOwners obj={gs} />
    </div>
  );
}
