_pgstack() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="pgstack"
                ;;
            pgstack,agent)
                cmd="pgstack__subcmd__agent"
                ;;
            pgstack,alert)
                cmd="pgstack__subcmd__alert"
                ;;
            pgstack,arp)
                cmd="pgstack__subcmd__arp"
                ;;
            pgstack,check)
                cmd="pgstack__subcmd__check"
                ;;
            pgstack,cib)
                cmd="pgstack__subcmd__cib"
                ;;
            pgstack,docs)
                cmd="pgstack__subcmd__docs"
                ;;
            pgstack,drbd)
                cmd="pgstack__subcmd__drbd"
                ;;
            pgstack,help)
                cmd="pgstack__subcmd__help"
                ;;
            pgstack,install)
                cmd="pgstack__subcmd__install"
                ;;
            pgstack,lab)
                cmd="pgstack__subcmd__lab"
                ;;
            pgstack,lvm)
                cmd="pgstack__subcmd__lvm"
                ;;
            pgstack,migrate-cib)
                cmd="pgstack__subcmd__migrate__subcmd__cib"
                ;;
            pgstack,pg)
                cmd="pgstack__subcmd__pg"
                ;;
            pgstack,vip)
                cmd="pgstack__subcmd__vip"
                ;;
            pgstack,xfs)
                cmd="pgstack__subcmd__xfs"
                ;;
            pgstack__subcmd__arp,announce)
                cmd="pgstack__subcmd__arp__subcmd__announce"
                ;;
            pgstack__subcmd__arp,help)
                cmd="pgstack__subcmd__arp__subcmd__help"
                ;;
            pgstack__subcmd__arp,probe)
                cmd="pgstack__subcmd__arp__subcmd__probe"
                ;;
            pgstack__subcmd__arp__subcmd__help,announce)
                cmd="pgstack__subcmd__arp__subcmd__help__subcmd__announce"
                ;;
            pgstack__subcmd__arp__subcmd__help,help)
                cmd="pgstack__subcmd__arp__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__arp__subcmd__help,probe)
                cmd="pgstack__subcmd__arp__subcmd__help__subcmd__probe"
                ;;
            pgstack__subcmd__cib,help)
                cmd="pgstack__subcmd__cib__subcmd__help"
                ;;
            pgstack__subcmd__cib,migrate)
                cmd="pgstack__subcmd__cib__subcmd__migrate"
                ;;
            pgstack__subcmd__cib,render)
                cmd="pgstack__subcmd__cib__subcmd__render"
                ;;
            pgstack__subcmd__cib,simulate)
                cmd="pgstack__subcmd__cib__subcmd__simulate"
                ;;
            pgstack__subcmd__cib,templates)
                cmd="pgstack__subcmd__cib__subcmd__templates"
                ;;
            pgstack__subcmd__cib,verify)
                cmd="pgstack__subcmd__cib__subcmd__verify"
                ;;
            pgstack__subcmd__cib__subcmd__help,help)
                cmd="pgstack__subcmd__cib__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__cib__subcmd__help,migrate)
                cmd="pgstack__subcmd__cib__subcmd__help__subcmd__migrate"
                ;;
            pgstack__subcmd__cib__subcmd__help,render)
                cmd="pgstack__subcmd__cib__subcmd__help__subcmd__render"
                ;;
            pgstack__subcmd__cib__subcmd__help,simulate)
                cmd="pgstack__subcmd__cib__subcmd__help__subcmd__simulate"
                ;;
            pgstack__subcmd__cib__subcmd__help,templates)
                cmd="pgstack__subcmd__cib__subcmd__help__subcmd__templates"
                ;;
            pgstack__subcmd__cib__subcmd__help,verify)
                cmd="pgstack__subcmd__cib__subcmd__help__subcmd__verify"
                ;;
            pgstack__subcmd__drbd,detach-node)
                cmd="pgstack__subcmd__drbd__subcmd__detach__subcmd__node"
                ;;
            pgstack__subcmd__drbd,fence-peer)
                cmd="pgstack__subcmd__drbd__subcmd__fence__subcmd__peer"
                ;;
            pgstack__subcmd__drbd,help)
                cmd="pgstack__subcmd__drbd__subcmd__help"
                ;;
            pgstack__subcmd__drbd,split-brain)
                cmd="pgstack__subcmd__drbd__subcmd__split__subcmd__brain"
                ;;
            pgstack__subcmd__drbd,unfence-peer)
                cmd="pgstack__subcmd__drbd__subcmd__unfence__subcmd__peer"
                ;;
            pgstack__subcmd__drbd__subcmd__help,detach-node)
                cmd="pgstack__subcmd__drbd__subcmd__help__subcmd__detach__subcmd__node"
                ;;
            pgstack__subcmd__drbd__subcmd__help,fence-peer)
                cmd="pgstack__subcmd__drbd__subcmd__help__subcmd__fence__subcmd__peer"
                ;;
            pgstack__subcmd__drbd__subcmd__help,help)
                cmd="pgstack__subcmd__drbd__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__drbd__subcmd__help,split-brain)
                cmd="pgstack__subcmd__drbd__subcmd__help__subcmd__split__subcmd__brain"
                ;;
            pgstack__subcmd__drbd__subcmd__help,unfence-peer)
                cmd="pgstack__subcmd__drbd__subcmd__help__subcmd__unfence__subcmd__peer"
                ;;
            pgstack__subcmd__help,agent)
                cmd="pgstack__subcmd__help__subcmd__agent"
                ;;
            pgstack__subcmd__help,alert)
                cmd="pgstack__subcmd__help__subcmd__alert"
                ;;
            pgstack__subcmd__help,arp)
                cmd="pgstack__subcmd__help__subcmd__arp"
                ;;
            pgstack__subcmd__help,check)
                cmd="pgstack__subcmd__help__subcmd__check"
                ;;
            pgstack__subcmd__help,cib)
                cmd="pgstack__subcmd__help__subcmd__cib"
                ;;
            pgstack__subcmd__help,docs)
                cmd="pgstack__subcmd__help__subcmd__docs"
                ;;
            pgstack__subcmd__help,drbd)
                cmd="pgstack__subcmd__help__subcmd__drbd"
                ;;
            pgstack__subcmd__help,help)
                cmd="pgstack__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__help,install)
                cmd="pgstack__subcmd__help__subcmd__install"
                ;;
            pgstack__subcmd__help,lab)
                cmd="pgstack__subcmd__help__subcmd__lab"
                ;;
            pgstack__subcmd__help,lvm)
                cmd="pgstack__subcmd__help__subcmd__lvm"
                ;;
            pgstack__subcmd__help,migrate-cib)
                cmd="pgstack__subcmd__help__subcmd__migrate__subcmd__cib"
                ;;
            pgstack__subcmd__help,pg)
                cmd="pgstack__subcmd__help__subcmd__pg"
                ;;
            pgstack__subcmd__help,vip)
                cmd="pgstack__subcmd__help__subcmd__vip"
                ;;
            pgstack__subcmd__help,xfs)
                cmd="pgstack__subcmd__help__subcmd__xfs"
                ;;
            pgstack__subcmd__help__subcmd__arp,announce)
                cmd="pgstack__subcmd__help__subcmd__arp__subcmd__announce"
                ;;
            pgstack__subcmd__help__subcmd__arp,probe)
                cmd="pgstack__subcmd__help__subcmd__arp__subcmd__probe"
                ;;
            pgstack__subcmd__help__subcmd__cib,migrate)
                cmd="pgstack__subcmd__help__subcmd__cib__subcmd__migrate"
                ;;
            pgstack__subcmd__help__subcmd__cib,render)
                cmd="pgstack__subcmd__help__subcmd__cib__subcmd__render"
                ;;
            pgstack__subcmd__help__subcmd__cib,simulate)
                cmd="pgstack__subcmd__help__subcmd__cib__subcmd__simulate"
                ;;
            pgstack__subcmd__help__subcmd__cib,templates)
                cmd="pgstack__subcmd__help__subcmd__cib__subcmd__templates"
                ;;
            pgstack__subcmd__help__subcmd__cib,verify)
                cmd="pgstack__subcmd__help__subcmd__cib__subcmd__verify"
                ;;
            pgstack__subcmd__help__subcmd__drbd,detach-node)
                cmd="pgstack__subcmd__help__subcmd__drbd__subcmd__detach__subcmd__node"
                ;;
            pgstack__subcmd__help__subcmd__drbd,fence-peer)
                cmd="pgstack__subcmd__help__subcmd__drbd__subcmd__fence__subcmd__peer"
                ;;
            pgstack__subcmd__help__subcmd__drbd,split-brain)
                cmd="pgstack__subcmd__help__subcmd__drbd__subcmd__split__subcmd__brain"
                ;;
            pgstack__subcmd__help__subcmd__drbd,unfence-peer)
                cmd="pgstack__subcmd__help__subcmd__drbd__subcmd__unfence__subcmd__peer"
                ;;
            pgstack__subcmd__help__subcmd__lab,_fenced)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd___fenced"
                ;;
            pgstack__subcmd__help__subcmd__lab,_init)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd___init"
                ;;
            pgstack__subcmd__help__subcmd__lab,_umlfenced)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd___umlfenced"
                ;;
            pgstack__subcmd__help__subcmd__lab,_writer)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd___writer"
                ;;
            pgstack__subcmd__help__subcmd__lab,crash)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__crash"
                ;;
            pgstack__subcmd__help__subcmd__lab,down)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__down"
                ;;
            pgstack__subcmd__help__subcmd__lab,fence-agent)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__fence__subcmd__agent"
                ;;
            pgstack__subcmd__help__subcmd__lab,kill-corosync)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__kill__subcmd__corosync"
                ;;
            pgstack__subcmd__help__subcmd__lab,promote-floor)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__promote__subcmd__floor"
                ;;
            pgstack__subcmd__help__subcmd__lab,psql)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__psql"
                ;;
            pgstack__subcmd__help__subcmd__lab,rejoin)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__rejoin"
                ;;
            pgstack__subcmd__help__subcmd__lab,restore)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__restore"
                ;;
            pgstack__subcmd__help__subcmd__lab,status)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__status"
                ;;
            pgstack__subcmd__help__subcmd__lab,switchover)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__switchover"
                ;;
            pgstack__subcmd__help__subcmd__lab,up)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__up"
                ;;
            pgstack__subcmd__help__subcmd__lab,writer)
                cmd="pgstack__subcmd__help__subcmd__lab__subcmd__writer"
                ;;
            pgstack__subcmd__help__subcmd__lvm,check-config)
                cmd="pgstack__subcmd__help__subcmd__lvm__subcmd__check__subcmd__config"
                ;;
            pgstack__subcmd__help__subcmd__lvm,snapshot)
                cmd="pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot"
                ;;
            pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot,create)
                cmd="pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot__subcmd__create"
                ;;
            pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot,mount)
                cmd="pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot__subcmd__mount"
                ;;
            pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot,remove)
                cmd="pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot__subcmd__remove"
                ;;
            pgstack__subcmd__help__subcmd__pg,diverged)
                cmd="pgstack__subcmd__help__subcmd__pg__subcmd__diverged"
                ;;
            pgstack__subcmd__help__subcmd__pg,rejoin)
                cmd="pgstack__subcmd__help__subcmd__pg__subcmd__rejoin"
                ;;
            pgstack__subcmd__help__subcmd__vip,claim)
                cmd="pgstack__subcmd__help__subcmd__vip__subcmd__claim"
                ;;
            pgstack__subcmd__help__subcmd__vip,move)
                cmd="pgstack__subcmd__help__subcmd__vip__subcmd__move"
                ;;
            pgstack__subcmd__help__subcmd__vip,release)
                cmd="pgstack__subcmd__help__subcmd__vip__subcmd__release"
                ;;
            pgstack__subcmd__help__subcmd__xfs,format)
                cmd="pgstack__subcmd__help__subcmd__xfs__subcmd__format"
                ;;
            pgstack__subcmd__help__subcmd__xfs,mount-options)
                cmd="pgstack__subcmd__help__subcmd__xfs__subcmd__mount__subcmd__options"
                ;;
            pgstack__subcmd__lab,_fenced)
                cmd="pgstack__subcmd__lab__subcmd___fenced"
                ;;
            pgstack__subcmd__lab,_init)
                cmd="pgstack__subcmd__lab__subcmd___init"
                ;;
            pgstack__subcmd__lab,_umlfenced)
                cmd="pgstack__subcmd__lab__subcmd___umlfenced"
                ;;
            pgstack__subcmd__lab,_writer)
                cmd="pgstack__subcmd__lab__subcmd___writer"
                ;;
            pgstack__subcmd__lab,crash)
                cmd="pgstack__subcmd__lab__subcmd__crash"
                ;;
            pgstack__subcmd__lab,down)
                cmd="pgstack__subcmd__lab__subcmd__down"
                ;;
            pgstack__subcmd__lab,fence-agent)
                cmd="pgstack__subcmd__lab__subcmd__fence__subcmd__agent"
                ;;
            pgstack__subcmd__lab,help)
                cmd="pgstack__subcmd__lab__subcmd__help"
                ;;
            pgstack__subcmd__lab,kill-corosync)
                cmd="pgstack__subcmd__lab__subcmd__kill__subcmd__corosync"
                ;;
            pgstack__subcmd__lab,migrate)
                cmd="pgstack__subcmd__lab__subcmd__switchover"
                ;;
            pgstack__subcmd__lab,promote-floor)
                cmd="pgstack__subcmd__lab__subcmd__promote__subcmd__floor"
                ;;
            pgstack__subcmd__lab,psql)
                cmd="pgstack__subcmd__lab__subcmd__psql"
                ;;
            pgstack__subcmd__lab,rejoin)
                cmd="pgstack__subcmd__lab__subcmd__rejoin"
                ;;
            pgstack__subcmd__lab,restore)
                cmd="pgstack__subcmd__lab__subcmd__restore"
                ;;
            pgstack__subcmd__lab,status)
                cmd="pgstack__subcmd__lab__subcmd__status"
                ;;
            pgstack__subcmd__lab,switchover)
                cmd="pgstack__subcmd__lab__subcmd__switchover"
                ;;
            pgstack__subcmd__lab,up)
                cmd="pgstack__subcmd__lab__subcmd__up"
                ;;
            pgstack__subcmd__lab,writer)
                cmd="pgstack__subcmd__lab__subcmd__writer"
                ;;
            pgstack__subcmd__lab__subcmd__help,_fenced)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd___fenced"
                ;;
            pgstack__subcmd__lab__subcmd__help,_init)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd___init"
                ;;
            pgstack__subcmd__lab__subcmd__help,_umlfenced)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd___umlfenced"
                ;;
            pgstack__subcmd__lab__subcmd__help,_writer)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd___writer"
                ;;
            pgstack__subcmd__lab__subcmd__help,crash)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__crash"
                ;;
            pgstack__subcmd__lab__subcmd__help,down)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__down"
                ;;
            pgstack__subcmd__lab__subcmd__help,fence-agent)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__fence__subcmd__agent"
                ;;
            pgstack__subcmd__lab__subcmd__help,help)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__lab__subcmd__help,kill-corosync)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__kill__subcmd__corosync"
                ;;
            pgstack__subcmd__lab__subcmd__help,promote-floor)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__promote__subcmd__floor"
                ;;
            pgstack__subcmd__lab__subcmd__help,psql)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__psql"
                ;;
            pgstack__subcmd__lab__subcmd__help,rejoin)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__rejoin"
                ;;
            pgstack__subcmd__lab__subcmd__help,restore)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__restore"
                ;;
            pgstack__subcmd__lab__subcmd__help,status)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__status"
                ;;
            pgstack__subcmd__lab__subcmd__help,switchover)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__switchover"
                ;;
            pgstack__subcmd__lab__subcmd__help,up)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__up"
                ;;
            pgstack__subcmd__lab__subcmd__help,writer)
                cmd="pgstack__subcmd__lab__subcmd__help__subcmd__writer"
                ;;
            pgstack__subcmd__lvm,check-config)
                cmd="pgstack__subcmd__lvm__subcmd__check__subcmd__config"
                ;;
            pgstack__subcmd__lvm,help)
                cmd="pgstack__subcmd__lvm__subcmd__help"
                ;;
            pgstack__subcmd__lvm,snapshot)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot"
                ;;
            pgstack__subcmd__lvm__subcmd__help,check-config)
                cmd="pgstack__subcmd__lvm__subcmd__help__subcmd__check__subcmd__config"
                ;;
            pgstack__subcmd__lvm__subcmd__help,help)
                cmd="pgstack__subcmd__lvm__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__lvm__subcmd__help,snapshot)
                cmd="pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot"
                ;;
            pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot,create)
                cmd="pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot__subcmd__create"
                ;;
            pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot,mount)
                cmd="pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot__subcmd__mount"
                ;;
            pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot,remove)
                cmd="pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot__subcmd__remove"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot,create)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__create"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot,help)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot,mount)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__mount"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot,remove)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__remove"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help,create)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__create"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help,help)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help,mount)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__mount"
                ;;
            pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help,remove)
                cmd="pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__remove"
                ;;
            pgstack__subcmd__pg,diverged)
                cmd="pgstack__subcmd__pg__subcmd__diverged"
                ;;
            pgstack__subcmd__pg,help)
                cmd="pgstack__subcmd__pg__subcmd__help"
                ;;
            pgstack__subcmd__pg,rejoin)
                cmd="pgstack__subcmd__pg__subcmd__rejoin"
                ;;
            pgstack__subcmd__pg__subcmd__help,diverged)
                cmd="pgstack__subcmd__pg__subcmd__help__subcmd__diverged"
                ;;
            pgstack__subcmd__pg__subcmd__help,help)
                cmd="pgstack__subcmd__pg__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__pg__subcmd__help,rejoin)
                cmd="pgstack__subcmd__pg__subcmd__help__subcmd__rejoin"
                ;;
            pgstack__subcmd__vip,claim)
                cmd="pgstack__subcmd__vip__subcmd__claim"
                ;;
            pgstack__subcmd__vip,help)
                cmd="pgstack__subcmd__vip__subcmd__help"
                ;;
            pgstack__subcmd__vip,move)
                cmd="pgstack__subcmd__vip__subcmd__move"
                ;;
            pgstack__subcmd__vip,release)
                cmd="pgstack__subcmd__vip__subcmd__release"
                ;;
            pgstack__subcmd__vip__subcmd__help,claim)
                cmd="pgstack__subcmd__vip__subcmd__help__subcmd__claim"
                ;;
            pgstack__subcmd__vip__subcmd__help,help)
                cmd="pgstack__subcmd__vip__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__vip__subcmd__help,move)
                cmd="pgstack__subcmd__vip__subcmd__help__subcmd__move"
                ;;
            pgstack__subcmd__vip__subcmd__help,release)
                cmd="pgstack__subcmd__vip__subcmd__help__subcmd__release"
                ;;
            pgstack__subcmd__xfs,format)
                cmd="pgstack__subcmd__xfs__subcmd__format"
                ;;
            pgstack__subcmd__xfs,help)
                cmd="pgstack__subcmd__xfs__subcmd__help"
                ;;
            pgstack__subcmd__xfs,mount-options)
                cmd="pgstack__subcmd__xfs__subcmd__mount__subcmd__options"
                ;;
            pgstack__subcmd__xfs__subcmd__help,format)
                cmd="pgstack__subcmd__xfs__subcmd__help__subcmd__format"
                ;;
            pgstack__subcmd__xfs__subcmd__help,help)
                cmd="pgstack__subcmd__xfs__subcmd__help__subcmd__help"
                ;;
            pgstack__subcmd__xfs__subcmd__help,mount-options)
                cmd="pgstack__subcmd__xfs__subcmd__help__subcmd__mount__subcmd__options"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        pgstack)
            opts="-h -V --help --version agent arp drbd lvm vip xfs cib check migrate-cib pg alert install lab docs help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__agent)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__alert)
            opts="-h --print --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp)
            opts="-h --help announce probe help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp__subcmd__announce)
            opts="-h --iface --ip --count --interval --mode --dst-mac --delay --netns --socket-fd --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --iface)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ip)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mode)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dst-mac)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --delay)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --netns)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --socket-fd)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp__subcmd__help)
            opts="announce probe help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp__subcmd__help__subcmd__announce)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp__subcmd__help__subcmd__probe)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__arp__subcmd__probe)
            opts="-h --iface --ip --wait --count --netns --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --iface)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ip)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --wait)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --netns)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__check)
            opts="-h --cib --corosync-conf --drbd-conf --ocf-root --lvm-system-dir --format --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --cib)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --corosync-conf)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --drbd-conf)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ocf-root)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lvm-system-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib)
            opts="-h --help templates render verify simulate migrate help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help)
            opts="templates render verify simulate migrate help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help__subcmd__migrate)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help__subcmd__render)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help__subcmd__simulate)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help__subcmd__templates)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__help__subcmd__verify)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__migrate)
            opts="-h --lifetime --cib-file --wait --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --lifetime)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cib-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --wait)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__render)
            opts="-h --template --set --format --no-fencing --online-status --out --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --template)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --set)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -W "xml crm pcs drbd corosync" -- "${cur}"))
                    return 0
                    ;;
                --out)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__simulate)
            opts="-h --scenario --node --resource --primary --lifetime --all --save --timeout --allow-missing-agents --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --scenario)
                    COMPREPLY=($(compgen -W "steady migrate node-fail standby fence" -- "${cur}"))
                    return 0
                    ;;
                --node)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --resource)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --primary)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lifetime)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --save)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__templates)
            opts="-h --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__cib__subcmd__verify)
            opts="-h --timeout --allow-missing-agents --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__docs)
            opts="-h --out --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --out)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd)
            opts="-h --help fence-peer unfence-peer split-brain detach-node help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__detach__subcmd__node)
            opts="-h --resource --good --destroy --node --drbdconf --yes --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --resource)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --good)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --node)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --drbdconf)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__fence__subcmd__peer)
            opts="-h --timeout --cib-file --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cib-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__help)
            opts="fence-peer unfence-peer split-brain detach-node help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__help__subcmd__detach__subcmd__node)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__help__subcmd__fence__subcmd__peer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__help__subcmd__split__subcmd__brain)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__help__subcmd__unfence__subcmd__peer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__split__subcmd__brain)
            opts="-h --resource --survivor --vg --node --drbdconf --yes --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --resource)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --survivor)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --vg)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --node)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --drbdconf)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__drbd__subcmd__unfence__subcmd__peer)
            opts="-h --timeout --cib-file --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cib-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help)
            opts="agent arp drbd lvm vip xfs cib check migrate-cib pg alert install lab docs help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__agent)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__alert)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__arp)
            opts="announce probe"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__arp__subcmd__announce)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__arp__subcmd__probe)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__check)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__cib)
            opts="templates render verify simulate migrate"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__cib__subcmd__migrate)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__cib__subcmd__render)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__cib__subcmd__simulate)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__cib__subcmd__templates)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__cib__subcmd__verify)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__docs)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__drbd)
            opts="fence-peer unfence-peer split-brain detach-node"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__drbd__subcmd__detach__subcmd__node)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__drbd__subcmd__fence__subcmd__peer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__drbd__subcmd__split__subcmd__brain)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__drbd__subcmd__unfence__subcmd__peer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__install)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab)
            opts="up status psql switchover crash promote-floor rejoin kill-corosync restore writer down fence-agent _init _fenced _writer _umlfenced"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd___fenced)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd___init)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd___umlfenced)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd___writer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__crash)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__down)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__fence__subcmd__agent)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__kill__subcmd__corosync)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__promote__subcmd__floor)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__psql)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__rejoin)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__restore)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__switchover)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__up)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lab__subcmd__writer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lvm)
            opts="check-config snapshot"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lvm__subcmd__check__subcmd__config)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot)
            opts="create mount remove"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot__subcmd__create)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot__subcmd__mount)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__lvm__subcmd__snapshot__subcmd__remove)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__migrate__subcmd__cib)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__pg)
            opts="rejoin diverged"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__pg__subcmd__diverged)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__pg__subcmd__rejoin)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__vip)
            opts="claim release move"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__vip__subcmd__claim)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__vip__subcmd__move)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__vip__subcmd__release)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__xfs)
            opts="format mount-options"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__xfs__subcmd__format)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__help__subcmd__xfs__subcmd__mount__subcmd__options)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__install)
            opts="-h --prefix --destdir --ocf-dir --initd-dir --alert-dir --default-dir --uninstall --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --prefix)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --destdir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ocf-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --initd-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --alert-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --default-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab)
            opts="-h --dir --advanced --help up status psql switchover migrate crash promote-floor rejoin kill-corosync restore writer down fence-agent _init _fenced _writer _umlfenced help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd___fenced)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd___init)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd___umlfenced)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd___writer)
            opts="-h --host --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --host)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__crash)
            opts="-h --no-wait --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__down)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__fence__subcmd__agent)
            opts="-h --mailbox --name --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --mailbox)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help)
            opts="up status psql switchover crash promote-floor rejoin kill-corosync restore writer down fence-agent _init _fenced _writer _umlfenced help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd___fenced)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd___init)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd___umlfenced)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd___writer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__crash)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__down)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__fence__subcmd__agent)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__kill__subcmd__corosync)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__promote__subcmd__floor)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__psql)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__rejoin)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__restore)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__switchover)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__up)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__help__subcmd__writer)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__kill__subcmd__corosync)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__promote__subcmd__floor)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__psql)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__rejoin)
            opts="-h --rewind --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__restore)
            opts="-h --as-is --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__status)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__switchover)
            opts="-h --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__up)
            opts="-h --nodes --stack --token --no-fencing --sync --set --dir --advanced --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --nodes)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --stack)
                    COMPREPLY=($(compgen -W "shared replication advanced" -- "${cur}"))
                    return 0
                    ;;
                --token)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --set)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lab__subcmd__writer)
            opts="-h --dir --advanced --help start stop check"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm)
            opts="-h --help check-config snapshot help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__check__subcmd__config)
            opts="-h --from --system-dir --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --from)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --system-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help)
            opts="check-config snapshot help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help__subcmd__check__subcmd__config)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot)
            opts="create mount remove"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot__subcmd__create)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot__subcmd__mount)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__help__subcmd__snapshot__subcmd__remove)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot)
            opts="-h --help create mount remove help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__create)
            opts="-h --vg --lv --name --size --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --vg)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lv)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help)
            opts="create mount remove help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__create)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__mount)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__help__subcmd__remove)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 5 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__mount)
            opts="-o -h --vg --name --options --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --vg)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --options)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -o)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__lvm__subcmd__snapshot__subcmd__remove)
            opts="-h --vg --name --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --vg)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__migrate__subcmd__cib)
            opts="-h --file --live --to --dry-run --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --to)
                    COMPREPLY=($(compgen -W "pgstack heartbeat" -- "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg)
            opts="-h --help rejoin diverged help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg__subcmd__diverged)
            opts="-h --pgdata --primary-conninfo --bindir --user --timeout --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --pgdata)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --primary-conninfo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bindir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --user)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg__subcmd__help)
            opts="rejoin diverged help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg__subcmd__help__subcmd__diverged)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg__subcmd__help__subcmd__rejoin)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__pg__subcmd__rejoin)
            opts="-h --pgdata --primary-conninfo --bindir --user --timeout --rewind --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --pgdata)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --primary-conninfo)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bindir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --user)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip)
            opts="-h --help claim release move help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__claim)
            opts="-h --ip --iface --label --netns --count --no-probe --timeout --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ip)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --iface)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --label)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --netns)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__help)
            opts="claim release move help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__help__subcmd__claim)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__help__subcmd__move)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__help__subcmd__release)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__move)
            opts="-h --ip --iface --label --netns --count --timeout --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ip)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --iface)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --label)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --netns)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__vip__subcmd__release)
            opts="-h --ip --iface --label --netns --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --ip)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --iface)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --label)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --netns)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs)
            opts="-h --help format mount-options help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs__subcmd__format)
            opts="-h --cpus --agcount --force --dry-run --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --cpus)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --agcount)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs__subcmd__help)
            opts="format mount-options help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs__subcmd__help__subcmd__format)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs__subcmd__help__subcmd__mount__subcmd__options)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 4 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        pgstack__subcmd__xfs__subcmd__mount__subcmd__options)
            opts="-h --nobarrier --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _pgstack -o nosort -o bashdefault -o default pgstack
else
    complete -F _pgstack -o bashdefault -o default pgstack
fi
