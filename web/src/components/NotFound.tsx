import { Link } from 'wouter';

export function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page here. <Link href="/">Back to the game servers</Link>
      </p>
    </section>
  );
}
