// placeholder, filled in below
export async function runDemo(_o: unknown): Promise<number> {
  return 2;
}
