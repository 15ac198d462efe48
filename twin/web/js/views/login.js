// The sign-in form. A failed sign-in says so without telling whether the name exists.

import { api } from "../api.js";
import { h } from "../dom.js";

export function loginView(ctx, signedIn) {
  return {
    mount(main) {
      const error = h("p", { class: "error", role: "alert", id: "login-error" });
      const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
      const password = h("input", {
        id: "password",
        name: "password",
        type: "password",
        autocomplete: "current-password",
        required: true,
      });
      const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
      const form = h(
        "form",
        { class: "login", "aria-labelledby": "login-title" },
        h("h1", { id: "login-title" }, "PumpTwin console"),
        h("p", { class: "muted" }, "Sign in to see the fleet and answer alarms."),
        h("label", { for: "username" }, "User name"),
        username,
        h("label", { for: "password" }, "Password"),
        password,
        submit,
        error,
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        try {
          const me = await api("/api/login", {
            method: "POST",
            body: { username: username.value.trim(), password: password.value },
          });
          signedIn(me);
        } catch (e) {
          error.textContent = e.status === 401 ? "Unknown user or wrong password." : `Sign-in failed: ${e.message}`;
          password.select();
        } finally {
          submit.disabled = false;
        }
      });
      main.append(form);
      username.focus();
    },
  };
}
