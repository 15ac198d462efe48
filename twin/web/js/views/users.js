// Accounts (#/users, admins only): every console account with its role and whether it is
// disabled; add one, change a role, reset a password, disable or enable. The twin refuses an admin
// demoting or disabling their own account (409 own_account), and says why; every change ends the
// account's sessions (it signs in again). Accounts are disabled, never deleted: every name in the
// journal stays one person.

import { api } from "../api.js";
import { when } from "../clock.js";
import { fill, h } from "../dom.js";

const ROLES = ["viewer", "trainee", "instructor", "admin"];

export function usersView(ctx) {
  let table;
  let status;
  let users = [];

  const say = (text, error = false) => {
    status.textContent = text;
    status.className = error ? "error" : "muted";
  };

  async function load() {
    try {
      users = await api("/api/users");
      draw();
    } catch (error) {
      say(`Accounts could not be read: ${error.message}`, true);
    }
  }

  async function change(username, body, done) {
    try {
      await api(`/api/users/${encodeURIComponent(username)}`, { method: "PATCH", body });
      say(`${username}: ${done}.`);
      await load();
    } catch (error) {
      say(`${username}: refused: ${error.message}`, true);
      await load();
    }
  }

  function resetPassword(user) {
    const error = h("p", { class: "error", role: "alert" });
    const password = h("input", { id: "reset-password", type: "password", autocomplete: "new-password", minlength: 8, required: true });
    const form = h(
      "form",
      { method: "dialog" },
      h("label", { for: "reset-password" }, `New password for ${user.username} (at least 8 characters)`),
      password,
      h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => d.close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Set password")),
      error,
    );
    const d = h("dialog", { "aria-labelledby": "dialog-title" }, h("h2", { id: "dialog-title" }, "Reset password"), form);
    d.addEventListener("close", () => d.remove());
    document.body.append(d);
    d.showModal();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api(`/api/users/${encodeURIComponent(user.username)}`, { method: "PATCH", body: { password: password.value } });
        d.close();
        say(`${user.username}: password reset; their sessions ended.`);
      } catch (e) {
        error.textContent = e.message;
      }
    });
    password.focus();
  }

  function draw() {
    const me = ctx.me?.username;
    fill(
      table.tBodies[0],
      users.map((u) => {
        const role = h("select", { "aria-label": `Role of ${u.username}`, dataset: { testid: "user-role" }, disabled: u.username === me }, ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r)));
        role.addEventListener("change", () => change(u.username, { role: role.value }, `role is now ${role.value}; their sessions ended`));
        return h(
          "tr",
          { dataset: { testid: "user-row", user: u.username, disabled: String(u.disabled) } },
          h("th", { scope: "row", "data-label": "Name" }, u.username, u.username === me ? h("span", { class: "muted" }, " (you)") : null),
          h("td", { "data-label": "Role" }, role),
          h("td", { "data-label": "Status" }, u.disabled ? h("strong", {}, "disabled") : "active"),
          h("td", { "data-label": "Changed" }, when(u.updated_at)),
          h(
            "td",
            { "data-label": "Actions" },
            h(
              "div",
              { class: "actions" },
              h(
                "button",
                { type: "button", dataset: { action: u.disabled ? "enable" : "disable" }, disabled: u.username === me, onclick: () => change(u.username, { disabled: !u.disabled }, u.disabled ? "enabled" : "disabled; their sessions ended") },
                u.disabled ? "Enable" : "Disable",
              ),
              h("button", { type: "button", dataset: { action: "reset-password" }, onclick: () => resetPassword(u) }, "Reset password…"),
            ),
          ),
        );
      }),
    );
    table.caption.textContent = `${users.length} account${users.length === 1 ? "" : "s"}; you cannot demote or disable your own.`;
  }

  function addForm() {
    const name = h("input", { id: "new-username", required: true, maxlength: 64, pattern: "[a-z0-9][a-z0-9._\\-]{0,63}", autocomplete: "off" });
    const role = h("select", { id: "new-role" }, ROLES.map((r) => h("option", { value: r, selected: r === "trainee" }, r)));
    const password = h("input", { id: "new-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
    const form = h(
      "form",
      { class: "add-user", "aria-labelledby": "add-user-title" },
      h("h3", { id: "add-user-title" }, "Add an account"),
      h("label", { for: "new-username" }, "User name (lower-case letters, digits, . _ -)"),
      name,
      h("label", { for: "new-role" }, "Role"),
      role,
      h("label", { for: "new-password" }, "Password (at least 8 characters)"),
      password,
      h("button", { type: "submit", class: "primary" }, "Add account"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const user = await api("/api/users", { method: "POST", body: { username: name.value.trim(), role: role.value, password: password.value } });
        say(`Added ${user.username} (${user.role}).`);
        form.reset();
        await load();
      } catch (error) {
        say(`Not added: ${error.message}`, true);
      }
    });
    return form;
  }

  return {
    mount(main) {
      status = h("p", { role: "status", class: "muted", dataset: { testid: "users-status" } });
      table = h(
        "table",
        { class: "users stacked" },
        h("caption"),
        h("thead", {}, h("tr", {}, ["Name", "Role", "Status", "Changed", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody"),
      );
      main.append(h("h2", {}, "Accounts"), status, h("div", { class: "columns" }, h("section", { class: "panel" }, table), h("section", { class: "panel" }, addForm())));
      load();
    },
  };
}
