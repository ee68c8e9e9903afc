import { createPublicKey, randomBytes, randomInt, verify, type KeyObject } from "node:crypto";
import { http, HttpResponse, type HttpHandler } from "msw";

// An in-memory GitHub REST API for one repository: branches (name → head sha), pull requests,
// issue comments and, for App auth, installation tokens. Requests are answered with the shapes and
// error bodies GitHub documents, and state carries across calls, so find → create → merge → close
// flows behave as they would against github.com. Every request is recorded with its answer status.

export type GitHubMockOptions = {
  owner: string;
  repo: string;
  /** REST API root, as given to the client; GHES: `https://ghe.example.com/api/v3`. */
  apiUrl?: string;
  webUrl?: string;
  /** A personal access / installation token the API accepts. */
  token?: string;
  /** A GitHub App: JWTs must be RS256-signed by the key matching `publicKey`, issued by `appId`. */
  app?: { appId: number | string; installationId: number; publicKey: KeyObject | string };
  defaultBranch?: string;
};

/** A file of a branch's change, as GitHub lists a pull request's files. */
export type MockFile = {
  filename: string;
  additions: number;
  deletions: number;
  patch?: string;
  status?: "added" | "modified" | "removed";
};

export type RecordedRequest = {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | null;
  body: unknown;
  status: number;
};

type MockPull = {
  number: number;
  id: number;
  head: string;
  base: string;
  title: string;
  body: string | null;
  state: "open" | "closed";
  merged: boolean;
  mergeable: boolean;
  /** Frozen when merged or closed; an open PR follows its branch. */
  headSha: string;
  baseSha: string;
  mergeSha: string | null;
  /** The merge commit's message as asked for (`commit_title`, `commit_message`). */
  mergeMessage: { title: string | null; message: string | null } | null;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  mergedAt: string | null;
  /** The files of a merged or closed pull request, frozen then; an open one shows its branch's. */
  files: MockFile[] | null;
};

export const sha = () => randomBytes(20).toString("hex");
const alnum = (n: number) =>
  Array.from(randomBytes(n), (b) => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[b % 62]).join("");
const headers = () => ({
  "x-github-api-version-selected": "2022-11-28",
  "x-github-request-id": `${alnum(4)}:${alnum(6)}:${alnum(7)}`,
  "x-ratelimit-limit": "5000",
  "x-ratelimit-remaining": "4999",
});
const DOCS = "https://docs.github.com/rest";

/** An error body as GitHub documents it: `{message, documentation_url, status[, errors]}`. */
export function githubError(status: number, message: string, docPath = "", errors?: unknown[]) {
  return HttpResponse.json(
    { message, documentation_url: `${DOCS}${docPath}`, status: String(status), ...(errors ? { errors } : {}) },
    { status, headers: headers() },
  );
}

function verifyJwt(jwt: string, key: KeyObject, appId: string): boolean {
  const [h, p, s] = jwt.split(".");
  if (!h || !p || !s) return false;
  const header = JSON.parse(Buffer.from(h, "base64url").toString()) as { alg?: string };
  const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as { iss?: unknown; iat?: number; exp?: number };
  const now = Math.floor(Date.now() / 1000);
  return (
    header.alg === "RS256" &&
    verify("RSA-SHA256", Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url")) &&
    String(claims.iss) === appId &&
    (claims.iat ?? Infinity) <= now + 60 &&
    (claims.exp ?? 0) > now &&
    (claims.exp ?? 0) - (claims.iat ?? 0) <= 600
  );
}

export function createGitHubMock(opts: GitHubMockOptions) {
  const { owner, repo } = opts;
  const api = (opts.apiUrl ?? "https://api.github.com").replace(/\/$/, "");
  const web = `${(opts.webUrl ?? "https://github.com").replace(/\/$/, "")}/${owner}/${repo}`;
  const repoApi = `${api}/repos/${owner}/${repo}`;
  const defaultBranch = opts.defaultBranch ?? "main";
  const appKey = opts.app
    ? typeof opts.app.publicKey === "string"
      ? createPublicKey(opts.app.publicKey)
      : opts.app.publicKey
    : undefined;

  const branches = new Map<string, string>([[defaultBranch, sha()]]);
  /** The change each branch carries against the default branch, file by file. */
  const branchFiles = new Map<string, MockFile[]>();
  const filesOf = (p: MockPull) => p.files ?? branchFiles.get(p.head) ?? [];
  const pulls: MockPull[] = [];
  const comments: Array<{ issue: number; body: string }> = [];
  const issuedTokens: string[] = [];
  const requests: RecordedRequest[] = [];
  let nextNumber = 1;

  const user = {
    login: owner,
    id: 9919,
    node_id: "MDEyOk9yZ2FuaXphdGlvbjk5MTk=",
    type: "Organization",
    site_admin: false,
    html_url: `${web.replace(/\/[^/]+$/, "")}`,
  };
  const repoJson = {
    id: 1296269,
    node_id: "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
    name: repo,
    full_name: `${owner}/${repo}`,
    private: true,
    owner: user,
    html_url: web,
    url: repoApi,
    default_branch: defaultBranch,
  };
  const headOf = (p: MockPull) => (p.state === "open" ? (branches.get(p.head) ?? p.headSha) : p.headSha);

  function pullJson(p: MockPull, full: boolean): Record<string, unknown> {
    const item: Record<string, unknown> = {
      url: `${repoApi}/pulls/${p.number}`,
      id: p.id,
      node_id: `PR_kwDO${alnum(10)}`,
      html_url: `${web}/pull/${p.number}`,
      diff_url: `${web}/pull/${p.number}.diff`,
      patch_url: `${web}/pull/${p.number}.patch`,
      issue_url: `${repoApi}/issues/${p.number}`,
      number: p.number,
      state: p.state,
      locked: false,
      title: p.title,
      user,
      body: p.body,
      created_at: p.createdAt,
      updated_at: p.updatedAt,
      closed_at: p.closedAt,
      merged_at: p.mergedAt,
      merge_commit_sha: p.mergeSha,
      assignee: null,
      assignees: [],
      requested_reviewers: [],
      requested_teams: [],
      labels: [],
      milestone: null,
      draft: false,
      head: { label: `${owner}:${p.head}`, ref: p.head, sha: headOf(p), user, repo: repoJson },
      base: { label: `${owner}:${p.base}`, ref: p.base, sha: p.baseSha, user, repo: repoJson },
      author_association: "MEMBER",
      auto_merge: null,
      active_lock_reason: null,
    };
    if (!full) return item;
    const open = p.state === "open";
    return {
      ...item,
      merged: p.merged,
      mergeable: open ? p.mergeable : null,
      rebaseable: open ? p.mergeable : null,
      mergeable_state: open ? (p.mergeable ? "clean" : "dirty") : "unknown",
      merged_by: p.merged ? user : null,
      comments: comments.filter((c) => c.issue === p.number).length,
      review_comments: 0,
      maintainer_can_modify: false,
      commits: 1,
      additions: filesOf(p).reduce((n, f) => n + f.additions, 0),
      deletions: filesOf(p).reduce((n, f) => n + f.deletions, 0),
      changed_files: filesOf(p).length,
    };
  }

  const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

  /** Opens a pull request directly in the state, as another client would have. */
  function openPullRequest(input: { branch: string; base?: string; title?: string; body?: string }): number {
    const at = now();
    const p: MockPull = {
      number: nextNumber++,
      id: randomInt(1e9, 2e9),
      head: input.branch,
      base: input.base ?? defaultBranch,
      title: input.title ?? input.branch,
      body: input.body ?? null,
      state: "open",
      merged: false,
      mergeable: true,
      headSha: branches.get(input.branch) ?? sha(),
      baseSha: branches.get(input.base ?? defaultBranch) ?? sha(),
      mergeSha: null,
      mergeMessage: null,
      createdAt: at,
      updatedAt: at,
      closedAt: null,
      mergedAt: null,
      files: null,
    };
    pulls.push(p);
    return p.number;
  }

  type Resolver = (args: {
    request: Request;
    params: Record<string, string | readonly string[] | undefined>;
    body: Record<string, unknown>;
  }) => Response | Promise<Response>;

  /** Records the request, checks its credentials and that it names this repository. */
  function route(resolver: Resolver, opts2: { repoScoped?: boolean } = {}) {
    return async ({
      request,
      params,
    }: {
      request: Request;
      params: Record<string, string | readonly string[] | undefined>;
    }) => {
      const url = new URL(request.url);
      const body =
        request.method === "GET" ? {} : ((await request.json().catch(() => ({}))) as Record<string, unknown>);
      const rec: RecordedRequest = {
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        authorization: request.headers.get("authorization"),
        body,
        status: 0,
      };
      requests.push(rec);
      const res = await (async () => {
        if (opts2.repoScoped !== false) {
          const [scheme, credential] = (rec.authorization ?? "").split(" ");
          if (!scheme || !credential) return githubError(401, "Requires authentication", "/pulls/pulls");
          if (!/^(token|bearer)$/i.test(scheme) || (credential !== opts.token && !issuedTokens.includes(credential)))
            return githubError(401, "Bad credentials");
          if (params.owner !== owner || params.repo !== repo) return githubError(404, "Not Found", "/pulls/pulls");
        }
        return resolver({ request, params, body });
      })();
      rec.status = res.status;
      return res;
    };
  }

  const findPull = (params: Record<string, unknown>) => pulls.find((p) => p.number === Number(params.number));
  const notFound = (doc: string) => githubError(404, "Not Found", doc);
  const json = (data: unknown, status = 200) =>
    HttpResponse.json(data as Record<string, unknown>, { status, headers: headers() });

  const handlers: HttpHandler[] = [
    http.get(
      `${api}/repos/:owner/:repo/pulls`,
      route(({ request }) => {
        const q = new URL(request.url).searchParams;
        const state = q.get("state") ?? "open";
        const head = q.get("head");
        const base = q.get("base");
        const perPage = Math.min(Number(q.get("per_page") ?? 30), 100);
        const page = Number(q.get("page") ?? 1);
        const matching = pulls
          .filter((p) => state === "all" || p.state === state)
          .filter((p) => !head || `${owner}:${p.head}` === head)
          .filter((p) => !base || p.base === base)
          .sort((a, b) => b.number - a.number);
        return json(matching.slice((page - 1) * perPage, page * perPage).map((p) => pullJson(p, false)));
      }),
    ),

    http.post(
      `${api}/repos/:owner/:repo/pulls`,
      route(({ body }) => {
        const doc = "/pulls/pulls#create-a-pull-request";
        const head = String(body.head ?? "").replace(new RegExp(`^${owner}:`), "");
        const base = String(body.base ?? "");
        if (!body.title)
          return githubError(422, "Validation Failed", doc, [
            { resource: "PullRequest", field: "title", code: "missing_field" },
          ]);
        if (!branches.has(head))
          return githubError(422, "Validation Failed", doc, [
            { resource: "PullRequest", field: "head", code: "invalid" },
          ]);
        if (!branches.has(base))
          return githubError(422, "Validation Failed", doc, [
            { resource: "PullRequest", field: "base", code: "invalid" },
          ]);
        if (pulls.some((p) => p.state === "open" && p.head === head && p.base === base)) {
          return githubError(422, "Validation Failed", doc, [
            { resource: "PullRequest", code: "custom", message: `A pull request already exists for ${owner}:${head}.` },
          ]);
        }
        if (branches.get(head) === branches.get(base)) {
          return githubError(422, "Validation Failed", doc, [
            { resource: "PullRequest", code: "custom", message: `No commits between ${base} and ${head}` },
          ]);
        }
        const n = openPullRequest({
          branch: head,
          base,
          title: String(body.title),
          body: body.body === undefined ? undefined : String(body.body),
        });
        const p = findPull({ number: n })!;
        return json({ ...pullJson(p, true), mergeable: null, rebaseable: null, mergeable_state: "unknown" }, 201);
      }),
    ),

    http.get(
      `${api}/repos/:owner/:repo/pulls/:number`,
      route(({ params }) => {
        const p = findPull(params);
        return p ? json(pullJson(p, true)) : notFound("/pulls/pulls#get-a-pull-request");
      }),
    ),

    // List pull request files: paginated with a Link header (per_page up to 100, default 30).
    http.get(
      `${api}/repos/:owner/:repo/pulls/:number/files`,
      route(({ request, params }) => {
        const p = findPull(params);
        if (!p) return notFound("/pulls/pulls#list-pull-requests-files");
        const url = new URL(request.url);
        const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 30), 100);
        const page = Number(url.searchParams.get("page") ?? 1);
        const all = filesOf(p);
        const items = all.slice((page - 1) * perPage, page * perPage).map((f) => ({
          sha: sha(),
          filename: f.filename,
          status: f.status ?? "modified",
          additions: f.additions,
          deletions: f.deletions,
          changes: f.additions + f.deletions,
          blob_url: `${web}/blob/${headOf(p)}/${f.filename}`,
          raw_url: `${web}/raw/${headOf(p)}/${f.filename}`,
          contents_url: `${repoApi}/contents/${f.filename}?ref=${headOf(p)}`,
          ...(f.patch !== undefined ? { patch: f.patch } : {}),
        }));
        const last = Math.max(1, Math.ceil(all.length / perPage));
        const link = (n: number) => {
          const u = new URL(url);
          u.searchParams.set("page", String(n));
          u.searchParams.set("per_page", String(perPage));
          return `<${u.href}>`;
        };
        const links = page < last ? [`${link(page + 1)}; rel="next"`, `${link(last)}; rel="last"`] : [];
        return HttpResponse.json(items, {
          headers: { ...headers(), ...(links.length ? { link: links.join(", ") } : {}) },
        });
      }),
    ),

    http.put(
      `${api}/repos/:owner/:repo/pulls/:number/merge`,
      route(({ params, body }) => {
        const doc = "/pulls/pulls#merge-a-pull-request";
        const p = findPull(params);
        if (!p) return notFound(doc);
        const method = body.merge_method ?? "merge";
        if (!["merge", "squash", "rebase"].includes(String(method))) {
          return githubError(422, "Invalid request.\n\nmerge_method is not included in the list.", doc);
        }
        if (p.state !== "open" || !p.mergeable) return githubError(405, "Pull Request is not mergeable", doc);
        if (body.sha !== undefined && body.sha !== headOf(p))
          return githubError(409, "Head branch was modified. Review and try the merge again.", doc);
        const at = now();
        const mergeMessage = {
          title: typeof body.commit_title === "string" ? body.commit_title : null,
          message: typeof body.commit_message === "string" ? body.commit_message : null,
        };
        Object.assign(p, {
          headSha: headOf(p),
          files: filesOf(p),
          state: "closed",
          merged: true,
          mergeSha: sha(),
          mergeMessage,
          mergedAt: at,
          closedAt: at,
          updatedAt: at,
        });
        branches.set(p.base, p.mergeSha!);
        return json({ sha: p.mergeSha, merged: true, message: "Pull Request successfully merged" });
      }),
    ),

    http.patch(
      `${api}/repos/:owner/:repo/pulls/:number`,
      route(({ params, body }) => {
        const p = findPull(params);
        if (!p) return notFound("/pulls/pulls#update-a-pull-request");
        const at = now();
        if (body.state === "closed" && p.state === "open")
          Object.assign(p, { headSha: headOf(p), files: filesOf(p), state: "closed", closedAt: at });
        if (body.state === "open" && p.state === "closed" && !p.merged)
          Object.assign(p, { state: "open", closedAt: null, files: null });
        if (typeof body.title === "string") p.title = body.title;
        if (typeof body.body === "string") p.body = body.body;
        p.updatedAt = at;
        return json(pullJson(p, true));
      }),
    ),

    http.post(
      `${api}/repos/:owner/:repo/issues/:number/comments`,
      route(({ params, body }) => {
        const p = findPull(params);
        if (!p) return notFound("/issues/comments#create-an-issue-comment");
        if (typeof body.body !== "string" || !body.body)
          return githubError(422, "Validation Failed", "/issues/comments#create-an-issue-comment", [
            { resource: "IssueComment", field: "body", code: "missing_field" },
          ]);
        comments.push({ issue: p.number, body: body.body });
        const id = randomInt(1e9, 2e9);
        const at = now();
        return json(
          {
            id,
            node_id: `IC_kwDO${alnum(10)}`,
            url: `${repoApi}/issues/comments/${id}`,
            html_url: `${web}/pull/${p.number}#issuecomment-${id}`,
            issue_url: `${repoApi}/issues/${p.number}`,
            body: body.body,
            user,
            created_at: at,
            updated_at: at,
            author_association: "MEMBER",
          },
          201,
        );
      }),
    ),

    // Delete a reference: `git/refs/heads/<branch>`, slashes in the branch as they are. 204 with no
    // body; 422 "Reference does not exist" when it is gone. GitHub closes the open pull requests
    // whose head branch was deleted.
    http.delete(
      `${api}/repos/:owner/:repo/git/refs/*`,
      route(({ request }) => {
        const doc = "/git/refs#delete-a-reference";
        const ref = decodeURIComponent(new URL(request.url).pathname.replace(/^.*?\/git\/refs\//, ""));
        const branch = ref.startsWith("heads/") ? ref.slice("heads/".length) : undefined;
        if (!branch || !branches.has(branch)) return githubError(422, "Reference does not exist", doc);
        const at = now();
        for (const p of pulls)
          if (p.state === "open" && p.head === branch)
            Object.assign(p, { headSha: headOf(p), files: filesOf(p), state: "closed", closedAt: at, updatedAt: at });
        branches.delete(branch);
        return new HttpResponse(null, { status: 204, headers: headers() });
      }),
    ),

    http.post(
      `${api}/app/installations/:id/access_tokens`,
      route(
        ({ request, params }) => {
          const doc = "/apps/apps#create-an-installation-access-token-for-an-app";
          const [scheme, jwt] = (request.headers.get("authorization") ?? "").split(" ");
          if (!opts.app || !appKey || !/^bearer$/i.test(scheme ?? "") || !jwt)
            return githubError(401, "A JSON web token could not be decoded", doc);
          if (!verifyJwt(jwt, appKey, String(opts.app.appId)))
            return githubError(401, "A JSON web token could not be decoded", doc);
          if (Number(params.id) !== opts.app.installationId) return notFound(doc);
          const token = `ghs_${alnum(36)}`;
          issuedTokens.push(token);
          const expires = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
          return json(
            {
              token,
              expires_at: expires,
              permissions: { contents: "write", metadata: "read", pull_requests: "write" },
              repository_selection: "selected",
            },
            201,
          );
        },
        { repoScoped: false },
      ),
    ),
  ];

  return {
    handlers,
    requests,
    comments,
    issuedTokens,
    /**
     * A push: creates or moves `branch` to `to` (a fresh sha by default); returns the new head.
     * `files` join the change the branch carries (a file pushed again replaces its entry).
     */
    pushBranch(branch: string, to = sha(), files: MockFile[] = []): string {
      branches.set(branch, to);
      const mine = branchFiles.get(branch) ?? [];
      for (const f of files) {
        const i = mine.findIndex((x) => x.filename === f.filename);
        if (i >= 0) mine[i] = f;
        else mine.push(f);
      }
      branchFiles.set(branch, mine);
      return to;
    },
    branchSha: (branch: string) => branches.get(branch),
    openPullRequest,
    /** What GitHub's mergeability check concluded (false: conflicts with the base). */
    setMergeable(number: number, mergeable: boolean) {
      findPull({ number })!.mergeable = mergeable;
    },
    pull: (number: number) => findPull({ number }),
  };
}

export type GitHubMock = ReturnType<typeof createGitHubMock>;
