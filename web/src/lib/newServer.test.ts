import { describe, expect, it } from 'vitest';

import type { Template } from '../api/types';
import { buildGameServer, causeMap, causesUnder, dnsLabelError, templateDefaults } from './newServer';

const paper: Template = {
  apiVersion: 'catalyst.dev/v1alpha1',
  kind: 'Template',
  metadata: { name: 'minecraft-paper' },
  spec: {
    description: 'Paper',
    images: [
      { name: 'Java 21', image: 'ghcr.io/pterodactyl/yolks:java_21' },
      { name: 'Java 17', image: 'ghcr.io/pterodactyl/yolks:java_17' },
    ],
    ports: [{ name: 'game', containerPort: 25565, protocol: 'TCPUDP' }],
    resources: { memory: '2Gi', pids: 512 },
    variables: [{ name: 'SERVER_JARFILE', default: 'server.jar' }, { name: 'MINECRAFT_VERSION', default: 'latest' }],
  },
};

describe('a new server from a Template', () => {
  it('checks the name as a DNS label', () => {
    expect(dnsLabelError('survival-1')).toBeNull();
    expect(dnsLabelError('')).toBe('is required');
    expect(dnsLabelError('Survival')).toMatch(/lowercase/);
    expect(dnsLabelError('-a')).toMatch(/starting and ending/);
    expect(dnsLabelError('a-')).not.toBeNull();
    expect(dnsLabelError('a.b')).not.toBeNull();
    expect(dnsLabelError('a'.repeat(63))).toBeNull();
    expect(dnsLabelError('a'.repeat(64))).toMatch(/63/);
  });

  it('reads what the Template offers', () => {
    const d = templateDefaults(paper);
    expect(d.images.map((i) => i.image)).toEqual(['ghcr.io/pterodactyl/yolks:java_21', 'ghcr.io/pterodactyl/yolks:java_17']);
    expect(d.resources).toEqual({ memory: '2Gi', cpu: undefined, disk: undefined, pids: 512 });
    expect(templateDefaults(undefined)).toMatchObject({ images: [], ports: [] });
  });

  it('copies ports and resources, sends only variables that differ from their default, and pins only a chosen image', () => {
    const d = templateDefaults(paper);
    const gs = buildGameServer(
      {
        namespace: 'default',
        name: 'survival',
        template: 'minecraft-paper',
        image: d.images[0].image,
        cpu: ' 2 ',
        memory: '2Gi',
        disk: '',
        ports: d.ports,
        variables: { SERVER_JARFILE: 'server.jar', MINECRAFT_VERSION: '1.21' },
        defaults: { SERVER_JARFILE: 'server.jar', MINECRAFT_VERSION: 'latest' },
      },
      paper,
    );
    expect(gs).toEqual({
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'GameServer',
      metadata: { name: 'survival', namespace: 'default' },
      spec: {
        template: 'minecraft-paper',
        variables: { MINECRAFT_VERSION: '1.21' },
        resources: { cpu: '2', memory: '2Gi' },
        ports: [{ name: 'game', containerPort: 25565, protocol: 'TCPUDP' }],
      },
    });
    const other = buildGameServer(
      { namespace: 'n', name: 'x', template: 't', image: d.images[1].image, cpu: '', memory: '', disk: '', ports: [], variables: {}, defaults: {} },
      undefined,
    );
    expect(other.spec).toEqual({ template: 't', image: 'ghcr.io/pterodactyl/yolks:java_17' });
  });

  it('groups causes by field', () => {
    const m = causeMap([
      { field: 'spec.ports[0].hostPort', message: 'is taken' },
      { field: 'spec.ports', message: 'too many' },
      { field: 'spec.portsX', message: 'other' },
      { field: 'metadata.name', message: 'bad' },
    ]);
    expect(causesUnder(m, 'spec.ports')).toEqual(['[0].hostPort: is taken', 'too many']);
    expect(causesUnder(m, 'metadata.name')).toEqual(['bad']);
  });
});
