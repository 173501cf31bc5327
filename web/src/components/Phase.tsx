/** A GameServer phase with its colour dot (the word carries the meaning; the colour only helps). */
export function Phase({ phase }: { phase: string }) {
  return (
    <span className="phase" data-phase={phase} data-testid="phase">
      {phase}
    </span>
  );
}
