/**
 * Checks one component of a file path taken from a torrent (or given to `createTorrent`), so
 * that joining the components under a download directory can never escape it.
 *
 * @param component One path component (a file or directory name).
 * @returns A phrase describing the problem, to follow the field name in a message (for example
 * `is a relative path component: ".."`), or `undefined` when the component is safe.
 */
export function pathComponentProblem(component: string): string | undefined {
  if (component.length === 0) return "must not be empty";
  const first = component.charCodeAt(0);
  if (first === 0x2e /* . */ && (component === "." || component === "..")) {
    return `is a relative path component: ${JSON.stringify(component)}`;
  }
  // A leading separator is an absolute path; `C:` alone is a Windows drive root.
  if (
    first === 0x2f /* / */ || first === 0x5c /* \ */ ||
    (component.length === 2 && component.charCodeAt(1) === 0x3a /* : */ &&
      /^[A-Za-z]/.test(component))
  ) {
    return `is an absolute path: ${JSON.stringify(component)}`;
  }
  if (component.includes("/") || component.includes("\\")) {
    return `contains a path separator: ${JSON.stringify(component)}`;
  }
  if (component.includes("\0")) return `contains a NUL byte: ${JSON.stringify(component)}`;
  return undefined;
}

/** A node of the path tree used to find files whose paths collide. */
interface PathNode {
  children: Map<string, PathNode> | undefined;
  /** Index of the file that ends here, or -1 for a directory. */
  file: number;
}

/**
 * Finds paths that collide: the same path twice, or a file whose path is also a directory of
 * another file (`a` and `a/b`). Runs in time linear in the total size of the paths.
 *
 * @param paths The file paths, as lists of components.
 * @param skip Tells which indexes to leave out (BEP 47 padding files may share a path).
 * @returns The index of a colliding file and of the file it collides with, or `undefined`.
 */
export function findPathConflict(
  paths: readonly (readonly string[])[],
  skip: (index: number) => boolean = () => false,
): { index: number; other: number } | undefined {
  const root: PathNode = { children: undefined, file: -1 };
  for (let index = 0; index < paths.length; index++) {
    if (skip(index)) continue;
    const path = paths[index]!;
    let node = root;
    for (let i = 0; i < path.length; i++) {
      if (node.file !== -1) return { index, other: node.file };
      node.children ??= new Map();
      let child = node.children.get(path[i]!);
      if (child === undefined) {
        child = { children: undefined, file: -1 };
        node.children.set(path[i]!, child);
      } else if (i === path.length - 1) {
        // The full path already exists, as a file or as a directory of some file.
        return { index, other: child.file !== -1 ? child.file : firstFile(child) };
      }
      node = child;
    }
    node.file = index;
  }
  return undefined;
}

function firstFile(node: PathNode): number {
  let current = node;
  while (current.file === -1) {
    const next = current.children?.values().next();
    if (next === undefined || next.done) return -1;
    current = next.value;
  }
  return current.file;
}
