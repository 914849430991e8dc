// placeholder until the command tree lands
