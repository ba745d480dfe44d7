import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { type AdminClient, ApiFailure, createClient, describeFailure } from "./api/client.js";
import { modelColors } from "./lib/colors.js";
import { canSignOut, forgetToken, readToken, saveToken } from "./session.js";
import { useFleet } from "./use-fleet.js";
import { EventsView } from "./views/events-view.js";
import { FleetView } from "./views/fleet-view.js";
import { Header, TABS, type Tab } from "./views/header.js";
import { LoginView } from "./views/login-view.js";
import { ModelColorsContext } from "./views/model-colors.js";
import { ModelsView } from "./views/models-view.js";
import { TrafficView } from "./views/traffic-view.js";

type Session =
  | { readonly kind: "checking"; readonly token: string }
  | { readonly kind: "login"; readonly message: string | null }
  | { readonly kind: "in"; readonly token: string };

const tabFromHash = (): Tab => {
  const name = window.location.hash.slice(1);
  return TABS.find((tab) => tab.id === name)?.id ?? "fleet";
};

/**
 * Checks the token against GET /api/fleet before showing anything; a cortex without an admin
 * token lets an empty one in, so the form is skipped there.
 */
export const App = () => {
  const [session, setSession] = useState<Session>(() => ({
    kind: "checking",
    token: readToken() ?? "",
  }));

  const signOut = useCallback((message: string | null) => {
    forgetToken();
    setSession({ kind: "login", message });
  }, []);

  useEffect(() => {
    if (session.kind !== "checking") return;
    const stop = new AbortController();
    createClient(session.token, () => {})
      .get("/api/fleet", stop.signal)
      .then(() => {
        saveToken(session.token);
        setSession({ kind: "in", token: session.token });
      })
      .catch((error: unknown) => {
        if (stop.signal.aborted) return;
        const refused = error instanceof ApiFailure && error.status === 401;
        setSession({
          kind: "login",
          message:
            refused && session.token === ""
              ? null
              : refused
                ? "cortex refused that token: enter its admin_token"
                : describeFailure(error),
        });
      });
    return () => stop.abort();
  }, [session]);

  if (session.kind === "login")
    return (
      <LoginView
        message={session.message}
        onSubmit={(token) => setSession({ kind: "checking", token })}
      />
    );
  if (session.kind === "checking") return <p class="splash">Connecting to cortex…</p>;
  return <Dashboard token={session.token} signOut={signOut} />;
};

const Dashboard = ({
  token,
  signOut,
}: {
  token: string;
  signOut: (message: string | null) => void;
}) => {
  const expired = useCallback(
    () => signOut("cortex refused the token (it may have changed): sign in again"),
    [signOut],
  );
  const client: AdminClient = useMemo(() => createClient(token, expired), [token, expired]);
  const state = useFleet(client, token, expired);
  const [tab, setTab] = useState<Tab>(tabFromHash);
  const knownModels = [
    ...state.catalogue.map((profile) => profile.id),
    ...(state.fleet?.nodes ?? []).flatMap((node) => node.models.map((model) => model.id)),
  ];
  const colorKey = [...new Set(knownModels)].sort().join("\n");
  const known = useMemo(() => new Set(colorKey.split("\n")), [colorKey]);
  const colors = useMemo(() => modelColors(colorKey.split("\n")), [colorKey]);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    const onHash = () => setTab(tabFromHash());
    window.addEventListener("hashchange", onHash);
    return () => {
      clearInterval(timer);
      window.removeEventListener("hashchange", onHash);
    };
  }, []);

  const select = (next: Tab) => {
    window.location.hash = next;
    setTab(next);
  };

  return (
    <ModelColorsContext.Provider value={colors}>
      <div class="shell">
        <Header
          tab={tab}
          onTab={select}
          fleet={state.fleet}
          stream={state.stream}
          onSignOut={canSignOut(token) ? () => signOut(null) : null}
        />
        {state.fleetError !== null && (
          <p class="banner banner-bad" role="alert">
            {state.fleetError}
          </p>
        )}
        <main>
          <div id={`panel-${tab}`} role="tabpanel" aria-labelledby={`tab-${tab}`}>
            {tab === "fleet" && (
              <FleetView
                fleet={state.fleet}
                loads={state.loads}
                events={state.events}
                now={now}
                client={client}
                refresh={state.refresh}
              />
            )}
            {tab === "models" && (
              <ModelsView
                client={client}
                fleet={state.fleet}
                catalogue={state.catalogue}
                loads={state.loads}
                now={now}
                refresh={state.refresh}
              />
            )}
            {tab === "traffic" && <TrafficView client={client} now={now} known={known} />}
            {tab === "events" && <EventsView events={state.events} />}
          </div>
        </main>
      </div>
    </ModelColorsContext.Provider>
  );
};
