"""Thing registration: CreateThing and AttachThingPrincipal for DevEUIs the bridge has not seen yet."""
