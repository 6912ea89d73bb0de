let blocked = []

export async function initialize(data) {
  blocked = data.blocked
}

export async function resolve(specifier, context, next) {
  if (blocked.some((name) => specifier === name || specifier.startsWith(`${name}/`))) {
    const error = new Error(`blocked for the test: "${specifier}" imported by ${context.parentURL}`)
    error.code = "ERR_BLOCKED_FOR_TEST"
    throw error
  }
  return next(specifier, context)
}
