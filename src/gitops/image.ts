// Container image references: [registry[:port]/]repository[:tag][@digest].

export type ImageRef = { name: string; tag?: string; digest?: string };

export function parseImage(ref: string): ImageRef {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // A colon after the last slash is a tag; one before it is a registry port.
  const colon = rest.lastIndexOf(":");
  const tag = colon > rest.lastIndexOf("/") ? rest.slice(colon + 1) : undefined;
  const name = tag === undefined ? rest : rest.slice(0, colon);
  return { name, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatImage(ref: ImageRef): string {
  return `${ref.name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/** What a person calls the version of an image: its tag, else its digest, else "latest". */
export function imageVersion(ref: ImageRef): string {
  return ref.tag ?? ref.digest ?? "latest";
}
