// @vitest-environment jsdom
// The shared table: header cells, the empty row spanning every column, rows as given.

import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen, within } from '@testing-library/react';

import { DataTable, ErrorAlert, HIDDEN_ACTIONS, ListToolbar, StatusNotice } from './AdminKit';

afterEach(cleanup);

describe('DataTable', () => {
  it('names the table and its columns, with classes and a hidden actions header', () => {
    render(
      <DataTable label="Things" columns={['Name', { label: 'Created', className: 'col-hide-phone' }, HIDDEN_ACTIONS]}>
        <tr>
          <td>a</td>
          <td>b</td>
          <td>c</td>
        </tr>
      </DataTable>,
    );
    const table = screen.getByRole('table', { name: 'Things' });
    const heads = within(table).getAllByRole('columnheader');
    expect(heads.map((h) => h.textContent)).toEqual(['Name', 'Created', 'Actions']);
    expect(heads[1].className).toBe('col-hide-phone');
    expect(heads[2].querySelector('.sr-only')).not.toBeNull();
    expect(within(table).getAllByRole('row')).toHaveLength(2);
    expect(table.parentElement?.className).toBe('table-wrap');
  });

  it('shows the empty text in one row across every column, and nothing when empty is null', () => {
    const { rerender } = render(<DataTable label="T" columns={['A', 'B', 'C']} empty="None yet." />);
    const cell = screen.getByText('None yet.');
    expect(cell.tagName).toBe('TD');
    expect(cell.getAttribute('colspan')).toBe('3');
    expect(cell.className).toBe('muted');
    rerender(<DataTable label="T" columns={['A', 'B', 'C']} empty={null} />);
    expect(screen.queryByText('None yet.')).toBeNull();
    expect(screen.getAllByRole('row')).toHaveLength(1);
  });
});

describe('ErrorAlert and StatusNotice', () => {
  it('show the text (an error by its message) and nothing when there is none', () => {
    const { container, rerender } = render(
      <>
        <ErrorAlert error={new Error('denied by the API')} />
        <StatusNotice text="Saved." />
      </>,
    );
    expect(screen.getByRole('alert').textContent).toBe('denied by the API');
    expect(screen.getByRole('status').textContent).toBe('Saved.');
    rerender(
      <>
        <ErrorAlert error="" />
        <ErrorAlert error={null} />
        <StatusNotice text="" />
      </>,
    );
    expect(container.innerHTML).toBe('');
  });
});

describe('ListToolbar', () => {
  it('shows the heading at its level, "loading…" then the count, and a spacer only before controls', () => {
    const { container, rerender } = render(<ListToolbar id="t" title="Nodes" loading count="1 of 2 ready" countTestId="n" />);
    expect(screen.getByRole('heading', { level: 1, name: 'Nodes' }).id).toBe('t');
    expect(screen.getByTestId('n').textContent).toBe('loading…');
    expect(container.querySelector('.spacer')).toBeNull();
    rerender(
      <ListToolbar id="t" title="Backups" level={2} loading={false} count="3">
        <button type="button">Create backup</button>
      </ListToolbar>,
    );
    expect(screen.getByRole('heading', { level: 2, name: 'Backups' })).toBeTruthy();
    expect(screen.getByText('3').getAttribute('aria-live')).toBe('polite');
    expect(container.querySelector('.spacer + button')?.textContent).toBe('Create backup');
  });
});
