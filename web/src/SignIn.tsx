// The signed-out state: a form for the daemon's access token. The token is
// sent once, to POST /api/login; what keeps the session is the HttpOnly
// cookie the daemon answers with, so the page never stores the token.

import { useRef, useState } from 'preact/hooks'

interface Props {
  onSignIn: (token: string) => Promise<void>
  notice?: string
}

export function SignIn({ onSignIn, notice }: Props) {
  const [token, setToken] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(notice ?? null)
  const input = useRef<HTMLInputElement>(null)

  const submit = async (event: Event) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await onSignIn(token)
    } catch (e) {
      // The daemon's 401 says "wrong token" itself.
      setError(e instanceof Error ? e.message : String(e))
      setBusy(false)
      // The button was disabled under the focus: give it back to the field.
      input.current?.select()
      input.current?.focus()
    }
  }

  return (
    <form class="card signin" onSubmit={submit}>
      <h2>Sign in</h2>
      <p class="muted">This daemon asks for its access token: the <code>token</code> of <code>[web]</code> in its config.</p>
      <label for="token">Token</label>
      <input
        id="token"
        ref={input}
        aria-invalid={error != null}
        aria-describedby={error ? 'token-error' : undefined}
        name="token"
        type="password"
        autocomplete="current-password"
        required
        autofocus
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
      />
      {error && (
        <p class="error" role="alert" id="token-error">
          {error}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy || token === ''}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
    </form>
  )
}
