while [ $# -ge 6 ]; do
  p=$1 s=$2 h=$3 m=$4 o=$5 g=$6
  shift 6
  d=${p%/*}
  [ -z "$d" ] || [ -d "$d" ] || mkdir -p -- "$d" || exit 1
  st=new
  if [ -f "$p" ] && [ ! -L "$p" ]; then
    i=$(stat -c '%s %a %U %G' -- "$p") || exit 1
    if [ "${i%% *}" = "$s" ] && [ "$(sha256sum < "$p")" = "$h  -" ]; then
      if [ "${i#* }" = "$m $o $g" ]; then st=same; else st=meta; fi
    fi
  fi
  echo "$st"
done
