// Builds REST response bodies in GitHub's shapes (the schemas of api.github.com.json) from the
// host's state. URLs follow GitHub's layout under this host's own base URLs.

export function nodeId(kind, id) {
  return Buffer.from(`0${kind.length}:${kind}${id}`).toString("base64");
}

export function iso(ms) {
  return ms == null ? null : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export class Urls {
  constructor(api, git) {
    this.api = api; // http://127.0.0.1:PORT
    this.html = `${api}/html`; // stands in for https://github.com
    this.git = git; // http://127.0.0.1:GITPORT/git
  }
}

export function simpleUser(u, urls) {
  const api = `${urls.api}/users/${u.login}`;
  return {
    login: u.login,
    id: u.id,
    node_id: nodeId(u.type === "Organization" ? "Organization" : "User", u.id),
    avatar_url: `${urls.html}/avatars/${u.login}`,
    gravatar_id: "",
    url: api,
    html_url: `${urls.html}/${u.login}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: u.type,
    user_view_type: "public",
    site_admin: !!u.site_admin,
  };
}

export function privateUser(u, urls) {
  return {
    ...simpleUser(u, urls),
    user_view_type: "private",
    name: u.name ?? u.login,
    company: null,
    blog: "",
    location: null,
    email: u.email ?? null,
    hireable: null,
    bio: null,
    twitter_username: null,
    public_repos: 0,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: iso(u.created),
    updated_at: iso(u.created),
    private_gists: 0,
    total_private_repos: 0,
    owned_private_repos: 0,
    disk_usage: 0,
    collaborators: 0,
    two_factor_authentication: false,
  };
}

export function repository(r, owner, urls, { full = false, permissions } = {}) {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`;
  const html = `${urls.html}/${r.owner}/${r.name}`;
  const out = {
    id: r.id,
    node_id: nodeId("Repository", r.id),
    name: r.name,
    full_name: `${r.owner}/${r.name}`,
    private: r.private,
    owner: simpleUser(owner, urls),
    html_url: html,
    description: r.description ?? null,
    fork: false,
    url: api,
    archive_url: `${api}/{archive_format}{/ref}`,
    assignees_url: `${api}/assignees{/user}`,
    blobs_url: `${api}/git/blobs{/sha}`,
    branches_url: `${api}/branches{/branch}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    comments_url: `${api}/comments{/number}`,
    commits_url: `${api}/commits{/sha}`,
    compare_url: `${api}/compare/{base}...{head}`,
    contents_url: `${api}/contents/{+path}`,
    contributors_url: `${api}/contributors`,
    deployments_url: `${api}/deployments`,
    downloads_url: `${api}/downloads`,
    events_url: `${api}/events`,
    forks_url: `${api}/forks`,
    git_commits_url: `${api}/git/commits{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_url: `${urls.git.replace(/^http/, "git")}/${r.owner}/${r.name}.git`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    issue_events_url: `${api}/issues/events{/number}`,
    issues_url: `${api}/issues{/number}`,
    keys_url: `${api}/keys{/key_id}`,
    labels_url: `${api}/labels{/name}`,
    languages_url: `${api}/languages`,
    merges_url: `${api}/merges`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    pulls_url: `${api}/pulls{/number}`,
    releases_url: `${api}/releases{/id}`,
    ssh_url: `git@127.0.0.1:${r.owner}/${r.name}.git`,
    stargazers_url: `${api}/stargazers`,
    statuses_url: `${api}/statuses/{sha}`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    tags_url: `${api}/tags`,
    teams_url: `${api}/teams`,
    trees_url: `${api}/git/trees{/sha}`,
    clone_url: `${urls.git}/${r.owner}/${r.name}.git`,
    mirror_url: null,
    hooks_url: `${api}/hooks`,
    svn_url: html,
    homepage: null,
    language: null,
    forks_count: 0,
    stargazers_count: 0,
    watchers_count: 0,
    size: 0,
    default_branch: r.default_branch,
    open_issues_count: r.openIssues(),
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: true,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: r.private ? "private" : "public",
    pushed_at: iso(r.pushed),
    created_at: iso(r.created),
    updated_at: iso(r.updated),
    allow_rebase_merge: true,
    allow_squash_merge: true,
    allow_merge_commit: true,
    allow_auto_merge: false,
    delete_branch_on_merge: false,
    allow_forking: true,
    web_commit_signoff_required: false,
    license: null,
    forks: 0,
    open_issues: r.openIssues(),
    watchers: 0,
  };
  if (permissions) out.permissions = permissions;
  if (full) {
    out.network_count = 0;
    out.subscribers_count = 0;
  }
  return out;
}

export function label(l, repo, urls) {
  return {
    id: l.id,
    node_id: nodeId("Label", l.id),
    url: `${urls.api}/repos/${repo.owner}/${repo.name}/labels/${encodeURIComponent(l.name)}`,
    name: l.name,
    color: l.color,
    default: false,
    description: l.description ?? null,
  };
}

export function teamSimple(t, org, urls) {
  const api = `${urls.api}/organizations/${org.id}/team/${t.id}`;
  return {
    id: t.id,
    node_id: nodeId("Team", t.id),
    url: api,
    html_url: `${urls.html}/orgs/${org.login}/teams/${t.slug}`,
    name: t.name,
    slug: t.slug,
    description: t.description ?? null,
    privacy: "closed",
    notification_setting: "notifications_enabled",
    permission: "pull",
    members_url: `${api}/members{/member}`,
    repositories_url: `${api}/repos`,
    type: "organization",
  };
}

export function team(t, org, urls) {
  return {
    ...teamSimple(t, org, urls),
    parent: null,
    permissions: { pull: true, triage: false, push: false, maintain: false, admin: false },
  };
}

function prLinks(pr, repo, urls) {
  const api = `${urls.api}/repos/${repo.owner}/${repo.name}`;
  const html = `${urls.html}/${repo.owner}/${repo.name}`;
  return {
    url: `${api}/pulls/${pr.number}`,
    html_url: `${html}/pull/${pr.number}`,
    diff_url: `${html}/pull/${pr.number}.diff`,
    patch_url: `${html}/pull/${pr.number}.patch`,
    issue_url: `${api}/issues/${pr.number}`,
    commits_url: `${api}/pulls/${pr.number}/commits`,
    review_comments_url: `${api}/pulls/${pr.number}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${pr.number}/comments`,
    statuses_url: `${api}/statuses/${pr.head_sha}`,
  };
}

// ctx: { user(login), repoJson(repo), labelsOf(pr), teamOf(slug) }
export function pullRequestSimple(pr, repo, ctx) {
  const { urls } = ctx;
  const l = prLinks(pr, repo, urls);
  const author = ctx.user(pr.user);
  const ownerUser = ctx.user(repo.owner);
  const repoJson = ctx.repoJson(repo);
  return {
    url: l.url,
    id: pr.id,
    node_id: nodeId("PullRequest", pr.id),
    html_url: l.html_url,
    diff_url: l.diff_url,
    patch_url: l.patch_url,
    issue_url: l.issue_url,
    number: pr.number,
    state: pr.state,
    locked: false,
    title: pr.title,
    user: simpleUser(author, urls),
    body: pr.body ?? null,
    created_at: iso(pr.created),
    updated_at: iso(pr.updated),
    closed_at: iso(pr.closed),
    merged_at: iso(pr.merged),
    merge_commit_sha: pr.merge_commit_sha ?? null,
    assignee: null,
    assignees: [],
    requested_reviewers: pr.requested_reviewers.map((u) => simpleUser(ctx.user(u), urls)),
    requested_teams: pr.requested_teams.map((t) => ctx.teamJson(repo.owner, t)),
    labels: ctx.labelsOf(pr),
    milestone: null,
    draft: !!pr.draft,
    commits_url: l.commits_url,
    review_comments_url: l.review_comments_url,
    review_comment_url: l.review_comment_url,
    comments_url: l.comments_url,
    statuses_url: l.statuses_url,
    head: {
      label: `${repo.owner}:${pr.head}`,
      ref: pr.head,
      sha: pr.head_sha,
      user: simpleUser(ownerUser, urls),
      repo: repoJson,
    },
    base: {
      label: `${repo.owner}:${pr.base}`,
      ref: pr.base,
      sha: pr.base_sha,
      user: simpleUser(ownerUser, urls),
      repo: repoJson,
    },
    _links: {
      self: { href: l.url },
      html: { href: l.html_url },
      issue: { href: l.issue_url },
      comments: { href: l.comments_url },
      review_comments: { href: l.review_comments_url },
      review_comment: { href: l.review_comment_url },
      commits: { href: l.commits_url },
      statuses: { href: l.statuses_url },
    },
    author_association: ctx.association(repo, pr.user),
    auto_merge: null,
    active_lock_reason: null,
  };
}

export function pullRequest(pr, repo, ctx, extra) {
  const simple = pullRequestSimple(pr, repo, ctx);
  return {
    ...simple,
    requested_teams: pr.requested_teams.map((t) => ctx.teamSimpleJson(repo.owner, t)),
    merged: pr.merged != null,
    mergeable: extra.mergeable,
    rebaseable: extra.mergeable,
    mergeable_state: extra.mergeable_state,
    merged_by: pr.merged_by ? simpleUser(ctx.user(pr.merged_by), ctx.urls) : null,
    comments: pr.comments.length,
    review_comments: 0,
    maintainer_can_modify: !!pr.maintainer_can_modify,
    commits: extra.commits,
    additions: extra.additions,
    deletions: extra.deletions,
    changed_files: extra.changed_files,
  };
}

export function reactionRollup(url, reactions) {
  const out = { url, total_count: reactions.length };
  for (const k of ["+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket"]) {
    out[k] = reactions.filter((r) => r.content === k).length;
  }
  return out;
}

export function issueComment(c, pr, repo, ctx) {
  const api = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}`;
  const url = `${api}/issues/comments/${c.id}`;
  return {
    id: c.id,
    node_id: nodeId("IssueComment", c.id),
    url,
    html_url: `${ctx.urls.html}/${repo.owner}/${repo.name}/pull/${pr.number}#issuecomment-${c.id}`,
    body: c.body,
    user: simpleUser(ctx.user(c.user), ctx.urls),
    created_at: iso(c.created),
    updated_at: iso(c.updated),
    issue_url: `${api}/issues/${pr.number}`,
    author_association: ctx.association(repo, c.user),
    performed_via_github_app: null,
    reactions: reactionRollup(`${url}/reactions`, c.reactions),
  };
}

export function reaction(r, ctx) {
  return {
    id: r.id,
    node_id: nodeId("Reaction", r.id),
    user: simpleUser(ctx.user(r.user), ctx.urls),
    content: r.content,
    created_at: iso(r.created),
  };
}

export function review(rv, pr, repo, ctx) {
  const html = `${ctx.urls.html}/${repo.owner}/${repo.name}/pull/${pr.number}#pullrequestreview-${rv.id}`;
  const prUrl = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/pulls/${pr.number}`;
  return {
    id: rv.id,
    node_id: nodeId("PullRequestReview", rv.id),
    user: simpleUser(ctx.user(rv.user), ctx.urls),
    body: rv.body ?? "",
    state: rv.state,
    html_url: html,
    pull_request_url: prUrl,
    _links: { html: { href: html }, pull_request: { href: prUrl } },
    submitted_at: iso(rv.submitted),
    commit_id: rv.commit_id,
    author_association: ctx.association(repo, rv.user),
  };
}

export function commitStatus(s, repo, ctx) {
  return {
    url: `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/statuses/${s.sha}`,
    avatar_url: `${ctx.urls.html}/avatars/${s.creator}`,
    id: s.id,
    node_id: nodeId("StatusContext", s.id),
    state: s.state,
    description: s.description ?? null,
    target_url: s.target_url ?? null,
    context: s.context,
    created_at: iso(s.created),
    updated_at: iso(s.created),
    creator: simpleUser(ctx.user(s.creator), ctx.urls),
  };
}

export function simpleCommitStatus(s, repo, ctx) {
  const full = commitStatus(s, repo, ctx);
  delete full.creator;
  return { ...full, required: null };
}

export function minimalRepository(repo, ctx) {
  const full = ctx.repoJson(repo);
  const keep = [
    "id", "node_id", "name", "full_name", "owner", "private", "html_url", "description", "fork", "url",
    "archive_url", "assignees_url", "blobs_url", "branches_url", "collaborators_url", "comments_url",
    "commits_url", "compare_url", "contents_url", "contributors_url", "deployments_url", "downloads_url",
    "events_url", "forks_url", "git_commits_url", "git_refs_url", "git_tags_url", "git_url",
    "issue_comment_url", "issue_events_url", "issues_url", "keys_url", "labels_url", "languages_url",
    "merges_url", "milestones_url", "notifications_url", "pulls_url", "releases_url", "ssh_url",
    "stargazers_url", "statuses_url", "subscribers_url", "subscription_url", "tags_url", "teams_url",
    "trees_url", "clone_url", "hooks_url",
  ];
  return Object.fromEntries(keep.map((k) => [k, full[k]]));
}

export function app(ctx) {
  const owner = ctx.user(ctx.appOwner());
  return {
    id: 1,
    slug: "githost-ci",
    node_id: nodeId("App", 1),
    client_id: "Iv1.githost",
    owner: simpleUser(owner, ctx.urls),
    name: "githost CI",
    description: "Check runs created through the test host's admin API",
    external_url: `${ctx.urls.html}/apps/githost-ci`,
    html_url: `${ctx.urls.html}/apps/githost-ci`,
    created_at: "2024-01-01T00:00:00Z",
    updated_at: "2024-01-01T00:00:00Z",
    permissions: { checks: "write", metadata: "read", pull_requests: "read", statuses: "write" },
    events: ["check_run", "check_suite", "pull_request"],
  };
}

export function checkRun(c, repo, ctx) {
  const api = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}`;
  const url = `${api}/check-runs/${c.id}`;
  return {
    id: c.id,
    head_sha: c.head_sha,
    node_id: nodeId("CheckRun", c.id),
    external_id: c.external_id ?? "",
    url,
    html_url: `${ctx.urls.html}/${repo.owner}/${repo.name}/runs/${c.id}`,
    details_url: c.details_url ?? `${ctx.urls.html}/${repo.owner}/${repo.name}/runs/${c.id}`,
    status: c.status,
    conclusion: c.conclusion ?? null,
    started_at: iso(c.started),
    completed_at: iso(c.completed),
    output: {
      title: c.output?.title ?? null,
      summary: c.output?.summary ?? null,
      text: c.output?.text ?? null,
      annotations_count: c.output?.annotations?.length ?? 0,
      annotations_url: `${url}/annotations`,
    },
    name: c.name,
    check_suite: { id: c.suite_id },
    app: app(ctx),
    pull_requests: ctx.pullsForSha(repo, c.head_sha).map((pr) => ({
      id: pr.id,
      number: pr.number,
      url: `${api}/pulls/${pr.number}`,
      head: { ref: pr.head, sha: pr.head_sha, repo: { id: repo.id, url: api, name: repo.name } },
      base: { ref: pr.base, sha: pr.base_sha, repo: { id: repo.id, url: api, name: repo.name } },
    })),
  };
}

export function contentFile(repo, ref, p, f, urls) {
  const api = `${urls.api}/repos/${repo.owner}/${repo.name}`;
  const self = `${api}/contents/${p}?ref=${encodeURIComponent(ref)}`;
  const gitUrl = `${api}/git/${f.type === "dir" ? "trees" : "blobs"}/${f.sha}`;
  const html = `${urls.html}/${repo.owner}/${repo.name}/${f.type === "dir" ? "tree" : "blob"}/${ref}/${p}`;
  return {
    type: f.type,
    encoding: "base64",
    size: f.size,
    name: p.split("/").pop(),
    path: p,
    content: f.content ? f.content.toString("base64").replace(/.{60}/g, "$&\n") + "\n" : undefined,
    sha: f.sha,
    url: self,
    git_url: gitUrl,
    html_url: html,
    download_url: f.type === "file" ? `${urls.api}/raw/${repo.owner}/${repo.name}/${ref}/${p}` : null,
    _links: { self, git: gitUrl, html },
  };
}

export function diffEntry(f, repo, headSha, urls) {
  const html = `${urls.html}/${repo.owner}/${repo.name}`;
  const out = {
    sha: f.sha,
    filename: f.filename,
    status: f.status,
    additions: f.additions,
    deletions: f.deletions,
    changes: f.changes,
    blob_url: `${html}/blob/${headSha}/${f.filename}`,
    raw_url: `${html}/raw/${headSha}/${f.filename}`,
    contents_url: `${urls.api}/repos/${repo.owner}/${repo.name}/contents/${f.filename}?ref=${headSha}`,
  };
  if (f.patch !== undefined) out.patch = f.patch;
  if (f.previous_filename) out.previous_filename = f.previous_filename;
  return out;
}
