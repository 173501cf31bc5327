// The egg import's options as the conversion endpoint takes them.

/** `FROM=TO` lines as the endpoint's repeated `imageMap` values; a bad line is reported. */
export function imageMapLines(text: string): { entries: string[]; error?: string } {
  const entries: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { entries, error: `${JSON.stringify(line)} is not FROM=TO` };
    entries.push(line);
  }
  return { entries };
}
